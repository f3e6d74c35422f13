-- Version 2: find a request's grant by an index, not a scan (Store.grant_for_request).
CREATE INDEX IF NOT EXISTS grants_request ON grants(json_extract(doc, '$.request_id'));
