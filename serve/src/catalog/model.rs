//! What the catalog API sends and takes, and how it is validated.

use chrono::{DateTime, Utc};
use reelflow_ingest::events;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts::double_option;
use crate::problem::FieldError;
use crate::validate;

/// Who may see a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed and playable by anyone.
    Public,
    /// Playable by anyone with the link, listed only to its owner.
    Unlisted,
    /// Only the owner and admins.
    Private,
}

impl Visibility {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Unlisted => "unlisted",
            Self::Private => "private",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "unlisted" => Some(Self::Unlisted),
            "private" => Some(Self::Private),
            _ => None,
        }
    }
}

impl From<Visibility> for events::Visibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => Self::Public,
            Visibility::Unlisted => Self::Unlisted,
            Visibility::Private => Self::Private,
        }
    }
}

/// Where a video is in its life: waiting for its upload, then the pipeline's
/// stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    /// Created; no upload yet.
    AwaitingUpload,
    /// The upload completed.
    Uploaded,
    /// Waiting for a transcoder.
    Queued,
    /// Being transcoded.
    Processing,
    /// Playable.
    Ready,
    /// The pipeline gave up.
    Failed,
}

impl VideoStatus {
    /// Every status, in life order.
    pub const ALL: [Self; 6] = [
        Self::AwaitingUpload,
        Self::Uploaded,
        Self::Queued,
        Self::Processing,
        Self::Ready,
        Self::Failed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingUpload => "awaiting_upload",
            Self::Uploaded => "uploaded",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A video as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Video {
    /// Id.
    pub id: Uuid,
    /// Owning account.
    pub owner_id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Genre.
    pub genre: Option<String>,
    /// BCP 47 language tag.
    pub language: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Who may see it.
    pub visibility: Visibility,
    /// Where it is in its life.
    pub status: VideoStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Video {
    /// The catalog event fields of this video.
    pub fn meta(&self) -> events::VideoMeta {
        events::VideoMeta {
            owner_id: self.owner_id,
            title: self.title.clone(),
            description: self.description.clone(),
            genre: self.genre.clone(),
            language: self.language.clone(),
            visibility: self.visibility.into(),
            tags: self.tags.clone(),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoPage {
    /// The videos, newest first.
    pub items: Vec<Video>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new video.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVideo {
    /// 1–200 characters.
    pub title: String,
    /// Up to 5000 characters.
    #[serde(default)]
    pub description: String,
    /// Up to 50 characters.
    #[serde(default)]
    pub genre: Option<String>,
    /// BCP 47 tag.
    #[serde(default)]
    pub language: Option<String>,
    /// Up to 20 tags of 1–50 characters; stored lower-cased, deduplicated.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default `public`.
    #[serde(default)]
    pub visibility: Option<Visibility>,
}

/// A partial update: absent fields stay, `null` clears genre or language,
/// `tags` replaces the whole list.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoPatch {
    /// 1–200 characters.
    pub title: Option<String>,
    /// Up to 5000 characters.
    pub description: Option<String>,
    /// Up to 50 characters, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub genre: Option<Option<String>>,
    /// BCP 47 tag, or null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// The new tag list.
    pub tags: Option<Vec<String>>,
    /// Who may see it.
    pub visibility: Option<Visibility>,
}

pub(crate) fn check_title(errors: &mut Vec<FieldError>, title: &str) {
    validate::text(errors, "title", title, 1, 200);
}

pub(crate) fn check_description(errors: &mut Vec<FieldError>, description: &str) {
    validate::text(errors, "description", description, 0, 5000);
}

pub(crate) fn check_genre(errors: &mut Vec<FieldError>, genre: &str) {
    validate::text(errors, "genre", genre, 1, 50);
}

/// Checks and normalises tags: trimmed, lower-cased, deduplicated, sorted.
pub(crate) fn normalise_tags(errors: &mut Vec<FieldError>, tags: &[String]) -> Vec<String> {
    if tags.len() > 20 {
        errors.push(FieldError::new("tags", "at most 20 tags"));
    }
    let mut out = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let t = tag.trim().to_lowercase();
        let n = t.chars().count();
        if n == 0 || n > 50 || t.chars().any(|c| c.is_control() || c == ',') {
            errors.push(FieldError::new(
                format!("tags[{i}]"),
                "must be 1-50 characters without commas",
            ));
        } else {
            out.push(t);
        }
    }
    out.sort();
    out.dedup();
    out
}

impl NewVideo {
    /// Validates and normalises.
    pub(crate) fn check(&self) -> Result<Vec<String>, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_title(&mut errors, &self.title);
        check_description(&mut errors, &self.description);
        if let Some(g) = &self.genre {
            check_genre(&mut errors, g);
        }
        if let Some(l) = &self.language {
            validate::language(&mut errors, "language", l);
        }
        let tags = normalise_tags(&mut errors, &self.tags);
        if errors.is_empty() { Ok(tags) } else { Err(errors) }
    }
}

impl VideoPatch {
    /// Validates and normalises the tags, if given.
    pub(crate) fn check(&self) -> Result<Option<Vec<String>>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(t) = &self.title {
            check_title(&mut errors, t);
        }
        if let Some(d) = &self.description {
            check_description(&mut errors, d);
        }
        if let Some(Some(g)) = &self.genre {
            check_genre(&mut errors, g);
        }
        if let Some(Some(l)) = &self.language {
            validate::language(&mut errors, "language", l);
        }
        let tags = self.tags.as_ref().map(|t| normalise_tags(&mut errors, t));
        if errors.is_empty() { Ok(tags) } else { Err(errors) }
    }
}
