-- Playback tokens name the generation of their video's visibility: every
-- change of visibility moves it on, so a private video never accepts a
-- token issued before it last changed (one minted while it was public,
-- say).
ALTER TABLE videos ADD COLUMN playback_generation BIGINT NOT NULL DEFAULT 0;
