-- Version 3: which remote edge (camgate edge serve at an owner's site) serves a camera
-- (Store.assign_edge; the hub's link and the HTTP API's live socket read it).
CREATE TABLE IF NOT EXISTS camera_edges (camera_id TEXT PRIMARY KEY, edge_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS camera_edges_edge ON camera_edges(edge_id);
