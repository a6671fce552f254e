-- Resumable (tus) uploads: where each one stands, so any server process can
-- carry it on after a restart. Bytes live in object storage: completed
-- parts in a multipart upload, the last unfinished part as a small "tail"
-- object.

CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    file_name TEXT,
    content_type TEXT,
    metadata TEXT NOT NULL,
    length BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    multipart_id TEXT NOT NULL,
    parts TEXT NOT NULL,
    tail_len BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX uploads_by_owner ON uploads (owner_id);
CREATE INDEX uploads_by_expiry ON uploads (expires_at);
