-- A store made by camgate at commit f833688 (before versioned migrations): its schema,
-- an owner, a camera and a waiver. test_store_pg_migrations upgrades it in place.
BEGIN TRANSACTION;
CREATE TABLE approval_waits (
    request_id TEXT PRIMARY KEY, deadline TEXT NOT NULL, outcome TEXT, doc TEXT NOT NULL);
CREATE TABLE artifacts (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, camera_id TEXT NOT NULL,
        grant_id TEXT, incident_id TEXT, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        created_at TEXT NOT NULL, expires_at TEXT NOT NULL, expires_ts REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'kept', deleted_at TEXT, deletion_seq INTEGER);
CREATE TABLE audit_intents (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL,
    after_seq INTEGER NOT NULL, pid INTEGER NOT NULL, started TEXT);
CREATE TABLE camera_settings (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE cameras (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES owners(id), doc TEXT NOT NULL);
INSERT INTO "cameras" VALUES('a1','alice','{"adapter": "test", "battery": false, "camera_class": "private", "fov_deg": null, "heading_deg": null, "id": "a1", "label": "", "owner_id": "alice", "position": {"lat": 32.30045045045045, "lon": -90.18}, "range_m": null, "source": "test://a1"}');
CREATE TABLE consent_cameras (
    consent_id TEXT NOT NULL REFERENCES consents(id), camera_id TEXT NOT NULL,
    PRIMARY KEY (consent_id, camera_id));
CREATE TABLE consents (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, revoked_at TEXT, doc TEXT NOT NULL);
CREATE TABLE decisions (request_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE deliveries (
    channel TEXT NOT NULL, notice_id TEXT NOT NULL, owner_id TEXT NOT NULL, doc TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, delivered_at TEXT,
    PRIMARY KEY (channel, notice_id));
CREATE TABLE edge_credentials (
    camera_id TEXT PRIMARY KEY, username TEXT NOT NULL, password TEXT NOT NULL);
CREATE TABLE edge_secret_settings (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE fact_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1), cameras INTEGER NOT NULL, consents INTEGER NOT NULL,
    incidents INTEGER NOT NULL);
INSERT INTO "fact_changes" VALUES(1,1,2,0);
CREATE TABLE geofence_zones (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, incident_id TEXT, doc TEXT NOT NULL);
CREATE TABLE grants (
    id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, token TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE holds (
        incident_id TEXT PRIMARY KEY, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
        placed_by TEXT NOT NULL);
CREATE TABLE incidents (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE masks (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema','1');
CREATE TABLE notices (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, doc TEXT NOT NULL, delivered_at TEXT);
CREATE TABLE owed_notices (
    id TEXT PRIMARY KEY, doc TEXT NOT NULL, pid INTEGER, started TEXT);
CREATE TABLE owners (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
INSERT INTO "owners" VALUES('alice','{"contact": null, "id": "alice", "name": "Alice", "time_zone": "UTC"}');
CREATE TABLE pending (
    request_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, deadline TEXT NOT NULL,
    outcome TEXT, doc TEXT NOT NULL);
CREATE TABLE privacy_zones (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE redeemed (grant_id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE requests (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE waivers (
    version TEXT PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL);
INSERT INTO "waivers" VALUES('w1','826ff0dab649a97ffdd7779a332accafb35cc161012253a19383db19289d6e02','I agree.');
CREATE TABLE zone_asks (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE zone_attestations (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE zone_changes (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT INTO "zone_changes" VALUES(1,1);
CREATE INDEX consent_cameras_camera ON consent_cameras(camera_id);
CREATE INDEX pending_open ON pending(outcome, deadline);
CREATE INDEX deliveries_due ON deliveries(channel, delivered_at, next_at);
CREATE TRIGGER cameras_INSERT_bumps AFTER INSERT ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER cameras_UPDATE_bumps AFTER UPDATE ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER cameras_DELETE_bumps AFTER DELETE ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER owners_INSERT_bumps AFTER INSERT ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER owners_UPDATE_bumps AFTER UPDATE ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER owners_DELETE_bumps AFTER DELETE ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER waivers_INSERT_bumps AFTER INSERT ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER waivers_UPDATE_bumps AFTER UPDATE ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER waivers_DELETE_bumps AFTER DELETE ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consents_INSERT_bumps AFTER INSERT ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consents_UPDATE_bumps AFTER UPDATE ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consents_DELETE_bumps AFTER DELETE ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consent_cameras_INSERT_bumps AFTER INSERT ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consent_cameras_UPDATE_bumps AFTER UPDATE ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER consent_cameras_DELETE_bumps AFTER DELETE ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER incidents_INSERT_bumps AFTER INSERT ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER incidents_UPDATE_bumps AFTER UPDATE ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER incidents_DELETE_bumps AFTER DELETE ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER privacy_zones_INSERT_zones AFTER INSERT ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER privacy_zones_UPDATE_zones AFTER UPDATE ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER privacy_zones_DELETE_zones AFTER DELETE ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER zone_attestations_INSERT_zones AFTER INSERT ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER zone_attestations_UPDATE_zones AFTER UPDATE ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER zone_attestations_DELETE_zones AFTER DELETE ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER masks_INSERT_zones AFTER INSERT ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER masks_UPDATE_zones AFTER UPDATE ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER masks_DELETE_zones AFTER DELETE ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER cameras_INSERT_zones AFTER INSERT ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER cameras_UPDATE_zones AFTER UPDATE ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER cameras_DELETE_zones AFTER DELETE ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE INDEX geofence_zones_incident ON geofence_zones(incident_id);
CREATE INDEX artifacts_due ON artifacts(state, expires_ts);
CREATE INDEX artifacts_incident ON artifacts(incident_id);
COMMIT;
