-- Version 1: the schema of camgate before versioned migrations (store, zones, retention).
-- Every statement is IF NOT EXISTS / OR IGNORE: a file made by an older camgate takes it as is.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS owners (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES owners(id), doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS waivers (
    version TEXT PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consents (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, revoked_at TEXT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consent_cameras (
    consent_id TEXT NOT NULL REFERENCES consents(id), camera_id TEXT NOT NULL,
    PRIMARY KEY (consent_id, camera_id));
CREATE INDEX IF NOT EXISTS consent_cameras_camera ON consent_cameras(camera_id);
CREATE TABLE IF NOT EXISTS incidents (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (request_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, token TEXT NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS redeemed (grant_id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notices (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, doc TEXT NOT NULL, delivered_at TEXT);
CREATE TABLE IF NOT EXISTS edge_credentials (
    camera_id TEXT PRIMARY KEY, username TEXT NOT NULL, password TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    request_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, deadline TEXT NOT NULL,
    outcome TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS pending_open ON pending(outcome, deadline);
CREATE TABLE IF NOT EXISTS deliveries (
    channel TEXT NOT NULL, notice_id TEXT NOT NULL, owner_id TEXT NOT NULL, doc TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, delivered_at TEXT,
    PRIMARY KEY (channel, notice_id));
CREATE TABLE IF NOT EXISTS masks (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
-- Requests waiting for a second person's approval (the agency's approval rule): the request,
-- the role, the deadline, and once answered the outcome, approver and reason (camgate.gate).
CREATE TABLE IF NOT EXISTS approval_waits (
    request_id TEXT PRIMARY KEY, deadline TEXT NOT NULL, outcome TEXT, doc TEXT NOT NULL);
-- A camera's own adapter settings (JSON), validated by its adapter when stored; the values of
-- keys the adapter marks secret are kept apart, with the credentials (edge_secret_settings).
-- Both tables are created in a store made by an older camgate when it is next opened.
CREATE TABLE IF NOT EXISTS camera_settings (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edge_secret_settings (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(channel, delivered_at, next_at);
-- A change whose audit record goes to another database (PostgreSQL): written before the record
-- (with the change itself when it reduces access), deleted once both are done; recovery settles
-- what a crash left (camgate.gate). ``pid`` and ``started`` name the writing process
-- (process_identity), so a reused pid is not mistaken for it.
CREATE TABLE IF NOT EXISTS audit_intents (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL,
    after_seq INTEGER NOT NULL, pid INTEGER NOT NULL, started TEXT);
-- Owner notices a committed change owes (a revocation's), sent and deleted after the commit by
-- the process named (pid, started); whatever a dead process left is sent by any other.
CREATE TABLE IF NOT EXISTS owed_notices (
    id TEXT PRIMARY KEY, doc TEXT NOT NULL, pid INTEGER, started TEXT);
-- How often each kind of fact a decision reads has changed, bumped by triggers (below) in the
-- transaction of every write to those tables, whichever process or connection makes it: a
-- decision re-validates what it keeps in memory by reading this one row (Store.changes).
CREATE TABLE IF NOT EXISTS fact_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1), cameras INTEGER NOT NULL, consents INTEGER NOT NULL,
    incidents INTEGER NOT NULL);
INSERT OR IGNORE INTO fact_changes VALUES (1, 0, 0, 0);
-- Residents' privacy zones (camgate.gate.residents): the zones, the owners' attestations that a
-- mask covers one (per zone and camera), the owners asked once per zone and camera, and one
-- counter bumped by every write to what decides which camera a zone refuses (zones,
-- attestations, masks, cameras), so the gate's camera-to-zones map is rebuilt only then.
CREATE TABLE IF NOT EXISTS privacy_zones (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zone_attestations (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE IF NOT EXISTS zone_asks (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE IF NOT EXISTS zone_changes (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
INSERT OR IGNORE INTO zone_changes VALUES (1, 0);
-- The audit tables are camgate.audit.sqlite's (created by the AuditLog).
CREATE TABLE IF NOT EXISTS geofence_zones (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, incident_id TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS geofence_zones_incident ON geofence_zones(incident_id);
CREATE TABLE IF NOT EXISTS artifacts (
        id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, camera_id TEXT NOT NULL,
        grant_id TEXT, incident_id TEXT, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
        created_at TEXT NOT NULL, expires_at TEXT NOT NULL, expires_ts REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'kept', deleted_at TEXT, deletion_seq INTEGER);
CREATE INDEX IF NOT EXISTS artifacts_due ON artifacts(state, expires_ts);
CREATE INDEX IF NOT EXISTS artifacts_incident ON artifacts(incident_id);
CREATE TABLE IF NOT EXISTS holds (
        incident_id TEXT PRIMARY KEY, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
        placed_by TEXT NOT NULL);
-- Change counters, bumped in the writing transaction (Store.changes, zone_changes).
CREATE TRIGGER IF NOT EXISTS cameras_INSERT_bumps AFTER INSERT ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER IF NOT EXISTS cameras_UPDATE_bumps AFTER UPDATE ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER IF NOT EXISTS cameras_DELETE_bumps AFTER DELETE ON cameras BEGIN UPDATE fact_changes SET cameras = cameras + 1; END;
CREATE TRIGGER IF NOT EXISTS owners_INSERT_bumps AFTER INSERT ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS owners_UPDATE_bumps AFTER UPDATE ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS owners_DELETE_bumps AFTER DELETE ON owners BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS waivers_INSERT_bumps AFTER INSERT ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS waivers_UPDATE_bumps AFTER UPDATE ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS waivers_DELETE_bumps AFTER DELETE ON waivers BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consents_INSERT_bumps AFTER INSERT ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consents_UPDATE_bumps AFTER UPDATE ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consents_DELETE_bumps AFTER DELETE ON consents BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consent_cameras_INSERT_bumps AFTER INSERT ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consent_cameras_UPDATE_bumps AFTER UPDATE ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS consent_cameras_DELETE_bumps AFTER DELETE ON consent_cameras BEGIN UPDATE fact_changes SET consents = consents + 1; END;
CREATE TRIGGER IF NOT EXISTS incidents_INSERT_bumps AFTER INSERT ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER IF NOT EXISTS incidents_UPDATE_bumps AFTER UPDATE ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER IF NOT EXISTS incidents_DELETE_bumps AFTER DELETE ON incidents BEGIN UPDATE fact_changes SET incidents = incidents + 1; END;
CREATE TRIGGER IF NOT EXISTS privacy_zones_INSERT_zones AFTER INSERT ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS privacy_zones_UPDATE_zones AFTER UPDATE ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS privacy_zones_DELETE_zones AFTER DELETE ON privacy_zones BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS zone_attestations_INSERT_zones AFTER INSERT ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS zone_attestations_UPDATE_zones AFTER UPDATE ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS zone_attestations_DELETE_zones AFTER DELETE ON zone_attestations BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS masks_INSERT_zones AFTER INSERT ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS masks_UPDATE_zones AFTER UPDATE ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS masks_DELETE_zones AFTER DELETE ON masks BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS cameras_INSERT_zones AFTER INSERT ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS cameras_UPDATE_zones AFTER UPDATE ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS cameras_DELETE_zones AFTER DELETE ON cameras BEGIN UPDATE zone_changes SET n = n + 1; END;
