-- Version 2: find a request's grant by an index, not a scan (Store.grant_for_request).
CREATE INDEX grants_request ON grants ((doc::jsonb ->> 'request_id'));
