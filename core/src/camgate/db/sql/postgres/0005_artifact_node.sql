-- Version 5: which node (machine) holds an artifact's file (Retention: each node's retention
-- run deletes only its own files; NULL for artifacts registered before, which any node takes).
ALTER TABLE artifacts ADD COLUMN node TEXT;
