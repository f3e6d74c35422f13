-- Version 1 on PostgreSQL: the same tables as SQLite's 0001, with what SQLite gives implicitly
-- made explicit: every table has a ``rowid`` (insertion order, for ORDER BY rowid), REAL is
-- double precision, and the change counters are bumped by plpgsql triggers. The audit tables
-- are camgate.audit.postgres's (created by the audit log).
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE owners (id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE cameras (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL REFERENCES owners(id), doc TEXT NOT NULL,
    rowid BIGSERIAL);
CREATE TABLE waivers (
    version TEXT PRIMARY KEY, sha256 TEXT NOT NULL, text TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE consents (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, revoked_at TEXT, doc TEXT NOT NULL,
    rowid BIGSERIAL);
CREATE INDEX consents_owner ON consents(owner_id);
CREATE TABLE consent_cameras (
    consent_id TEXT NOT NULL REFERENCES consents(id), camera_id TEXT NOT NULL,
    rowid BIGSERIAL, PRIMARY KEY (consent_id, camera_id));
CREATE INDEX consent_cameras_camera ON consent_cameras(camera_id);
CREATE TABLE incidents (id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE requests (id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE decisions (request_id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE grants (
    id TEXT PRIMARY KEY, camera_id TEXT NOT NULL, token TEXT NOT NULL, doc TEXT NOT NULL,
    rowid BIGSERIAL);
CREATE TABLE redeemed (grant_id TEXT PRIMARY KEY, at TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE notices (
    id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, doc TEXT NOT NULL, delivered_at TEXT,
    rowid BIGSERIAL);
CREATE INDEX notices_owner ON notices(owner_id);
CREATE TABLE edge_credentials (
    camera_id TEXT PRIMARY KEY, username TEXT NOT NULL, password TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE pending (
    request_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, deadline TEXT NOT NULL,
    outcome TEXT, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE INDEX pending_open ON pending(outcome, deadline);
CREATE TABLE deliveries (
    channel TEXT NOT NULL, notice_id TEXT NOT NULL, owner_id TEXT NOT NULL, doc TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0, next_at DOUBLE PRECISION NOT NULL, delivered_at TEXT,
    rowid BIGSERIAL, PRIMARY KEY (channel, notice_id));
CREATE INDEX deliveries_due ON deliveries(channel, delivered_at, next_at);
CREATE TABLE masks (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE approval_waits (
    request_id TEXT PRIMARY KEY, deadline TEXT NOT NULL, outcome TEXT, doc TEXT NOT NULL,
    rowid BIGSERIAL);
CREATE TABLE camera_settings (camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE edge_secret_settings (
    camera_id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE audit_intents (
    id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL,
    after_seq BIGINT NOT NULL, pid BIGINT NOT NULL, started TEXT);
CREATE TABLE owed_notices (
    id TEXT PRIMARY KEY, doc TEXT NOT NULL, pid BIGINT, started TEXT, rowid BIGSERIAL);
CREATE TABLE fact_changes (
    id INTEGER PRIMARY KEY CHECK (id = 1), cameras BIGINT NOT NULL, consents BIGINT NOT NULL,
    incidents BIGINT NOT NULL);
INSERT INTO fact_changes VALUES (1, 0, 0, 0);
CREATE TABLE privacy_zones (id TEXT PRIMARY KEY, doc TEXT NOT NULL, rowid BIGSERIAL);
CREATE TABLE zone_attestations (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, doc TEXT NOT NULL, rowid BIGSERIAL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE zone_asks (
    zone_id TEXT NOT NULL, camera_id TEXT NOT NULL, at TEXT NOT NULL, rowid BIGSERIAL,
    PRIMARY KEY (zone_id, camera_id));
CREATE TABLE zone_changes (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
INSERT INTO zone_changes VALUES (1, 0);
CREATE TABLE geofence_zones (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, incident_id TEXT, doc TEXT NOT NULL,
    rowid BIGSERIAL);
CREATE INDEX geofence_zones_incident ON geofence_zones(incident_id);
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, kind TEXT NOT NULL, camera_id TEXT NOT NULL,
    grant_id TEXT, incident_id TEXT, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
    created_at TEXT NOT NULL, expires_at TEXT NOT NULL, expires_ts DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL DEFAULT 'kept', deleted_at TEXT, deletion_seq BIGINT, rowid BIGSERIAL);
CREATE INDEX artifacts_due ON artifacts(state, expires_ts);
CREATE INDEX artifacts_incident ON artifacts(incident_id);
CREATE TABLE holds (
    incident_id TEXT PRIMARY KEY, reason TEXT NOT NULL, placed_at TEXT NOT NULL,
    placed_by TEXT NOT NULL, rowid BIGSERIAL);

-- Change counters: one statement-level trigger per table and kind of write, in the writing
-- transaction (as SQLite's row triggers). TG_ARGV[0] names the fact_changes column.
CREATE FUNCTION camgate_bump_fact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fact_changes SET
        cameras = cameras + (TG_ARGV[0] = 'cameras')::int,
        consents = consents + (TG_ARGV[0] = 'consents')::int,
        incidents = incidents + (TG_ARGV[0] = 'incidents')::int;
    RETURN NULL;
END $$;
CREATE FUNCTION camgate_bump_zones() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE zone_changes SET n = n + 1;
    RETURN NULL;
END $$;
-- Other hubs learn of a commit that changes what decisions and live streams read through
-- NOTIFY (sent at commit, once per transaction and channel): consent, registry, incidents,
-- zones, decisions. Never per audit record or per delivery: NOTIFY serialises commits.
-- store_version counts those commits exactly (Store.data_version reads it: one row).
CREATE TABLE store_version (id INTEGER PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
INSERT INTO store_version VALUES (1, 0);
CREATE FUNCTION camgate_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE store_version SET n = n + 1;
    PERFORM pg_notify('camgate_changes', '');
    RETURN NULL;
END $$;
CREATE TRIGGER cameras_bumps AFTER INSERT OR UPDATE OR DELETE ON cameras
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('cameras');
CREATE TRIGGER owners_bumps AFTER INSERT OR UPDATE OR DELETE ON owners
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('consents');
CREATE TRIGGER waivers_bumps AFTER INSERT OR UPDATE OR DELETE ON waivers
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('consents');
CREATE TRIGGER consents_bumps AFTER INSERT OR UPDATE OR DELETE ON consents
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('consents');
CREATE TRIGGER consent_cameras_bumps AFTER INSERT OR UPDATE OR DELETE ON consent_cameras
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('consents');
CREATE TRIGGER incidents_bumps AFTER INSERT OR UPDATE OR DELETE ON incidents
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_fact('incidents');
CREATE TRIGGER privacy_zones_zones AFTER INSERT OR UPDATE OR DELETE ON privacy_zones
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_zones();
CREATE TRIGGER zone_attestations_zones AFTER INSERT OR UPDATE OR DELETE ON zone_attestations
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_zones();
CREATE TRIGGER masks_zones AFTER INSERT OR UPDATE OR DELETE ON masks
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_zones();
CREATE TRIGGER cameras_zones AFTER INSERT OR UPDATE OR DELETE ON cameras
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_bump_zones();
CREATE TRIGGER fact_changes_notify AFTER UPDATE ON fact_changes
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_notify();
CREATE TRIGGER zone_changes_notify AFTER UPDATE ON zone_changes
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_notify();
CREATE TRIGGER decisions_notify AFTER INSERT OR UPDATE OR DELETE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_notify();
CREATE TRIGGER geofence_zones_notify AFTER INSERT OR UPDATE OR DELETE ON geofence_zones
    FOR EACH STATEMENT EXECUTE FUNCTION camgate_notify();
