//! The views, as one differential dataflow over the decoded facts.
//!
//! Shape: facts are split by kind; each entity's events are folded by a
//! reduce keyed by the entity (catalog entry and media state per video,
//! summary per playback session — see [`crate::definitions`]); sums over
//! sessions are differences ([`VideoSums`]), added up per video
//! ([`join_sums`]); maxima and percentiles are reduces (the maximum in
//! two levels, so a popular video's reduce never sees every session).
//! Log time is totally ordered, so every reduce, count and distinct is the
//! `_total` kind ([`crate::operators`]), which keeps no output history. A
//! video's sums change with every heartbeat: they are added up and joined
//! with everything slow-moving its views show in one operator
//! ([`join_sums`]), whose result is arranged once and shared by
//! `video_stats`, `qoe` and `genre_stats`. A session's
//! summary is accumulated from its events in whatever order they come,
//! without keeping them ([`SessionAccumulator`]), and it is joined with its
//! video's duration in the same operator
//! ([`ReduceTotal::accumulate_beside`]), so a heartbeat moves through no
//! join before the sums. What downstream of the sessions looks at
//! only a part of a summary that a heartbeat rarely changes (the viewer,
//! the start, the startup time, the retention bucket, idleness) takes a
//! session's change as a pair ([`project_changes`], [`sum_changes`]), so the heartbeat's
//! retraction and insertion cancel before they are exchanged and
//! arranged, and a batch's changes to one video's sums are one update. A
//! window keeps each thing seen in it once, until the window has passed
//! its last sighting ([`distinct_in_window`]), so windowed views change as the
//! frontier passes even when no event arrives; ranks are a two-level
//! top-k. Views that change seldom end as `(key row, value row)`; those
//! that change with every heartbeat end in their own types and are read
//! as rows (`crate::read`): each video's figures (`video_stats` and
//! `qoe`, `VIDEO_STATS`, `QOE`), `retention` and `watch_history`.

use std::time::Duration;

use differential_dataflow::operators::arrange::Arranged as Arrangement;
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use uuid::Uuid;

use crate::datum::Row;
use crate::definitions::{
    GroupSums, HistoryFold, MediaState, SessionAccumulator, SessionSummary, VideoFigures, VideoSums, WatchedSession,
    percentile, rows, startup_bucket,
};
use crate::facts::Beacon;
use crate::operators::{
    Latest, Phase, ReduceTotal, distinct_in_window, fold_closed, join_sums, project_changes, sum_changes,
};
use crate::read::{ViewTrace, Watched};
use crate::schema::View;
use crate::source::Sourced;
use crate::time::{Coll, Time};

/// Lengths of the time-based views' windows.
#[derive(Clone, Debug)]
pub struct Windows {
    /// Activity window of `concurrent_viewers`.
    pub concurrent: Duration,
    /// `trending`'s windows, by the name the `window` column shows.
    pub trending: Vec<(String, Duration)>,
    /// Ranks kept per trending window.
    pub trending_top: usize,
    /// How long a playback session lingers after its latest record before
    /// it closes (`crate::definitions`), unless it has ended. At least
    /// `concurrent`.
    pub session_idle: Duration,
}

impl Windows {
    /// How long `s` lingers after its latest record before it closes, in
    /// log time.
    pub(crate) fn linger(&self, s: &SessionSummary) -> Time {
        let ms = |d: Duration| Time::try_from(d.as_millis()).unwrap_or(Time::MAX);
        let grace = ms(self.concurrent);
        s.linger(ms(self.session_idle).max(grace), grace)
    }
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            concurrent: Duration::from_secs(60),
            trending: vec![
                ("1h".into(), Duration::from_secs(3600)),
                ("24h".into(), Duration::from_secs(86_400)),
            ],
            trending_top: 100,
            session_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// Buckets of the first level of a two-level reduce.
const SPREAD: u128 = 16;

pub(crate) fn spread(id: Uuid) -> u8 {
    (id.as_u128() % SPREAD) as u8
}

/// What a start from a snapshot feeds the readers of closed sessions
/// beside the log (`crate::snapshot::Closed`), each at the point where the
/// dataflow folds closed sessions in; empty without a snapshot.
pub struct Seeds<'s> {
    /// Added to the videos' sums.
    pub totals: Coll<'s, Uuid, VideoSums>,
    /// Signed-in viewers of a video, before they are made distinct.
    pub viewers: Coll<'s, (Uuid, Uuid)>,
    /// Anonymous sessions of a video.
    pub anonymous: Coll<'s, Uuid>,
    /// Startup buckets of a video.
    pub startups: Coll<'s, (Uuid, Option<u64>)>,
    /// Retention buckets of a video.
    pub retention: Coll<'s, (Uuid, u64)>,
    /// Closed latest starts, per video and spread.
    pub last_view: Coll<'s, ((Uuid, u8), (Phase, i64))>,
    /// Closed histories, per viewer and video, each as one session.
    pub history: Coll<'s, ((Uuid, Uuid), (Phase, WatchedSession))>,
    /// Session starts, per video and session, at their exact stamp.
    pub starts: Coll<'s, ((Uuid, Uuid), Time)>,
}

/// Every view, as [`build`] makes it.
pub struct Built<'s> {
    /// The views arranged as their rows.
    pub rows: Vec<(View, Coll<'s, (Row, Row)>)>,
    /// What `video_stats` and `qoe` are read from (`VIDEO_STATS`, `QOE`),
    /// arranged: `genre_stats` joins it too.
    pub figures: Arrangement<'s, ViewTrace<Uuid, VideoFigures>>,
    /// How many sessions of a video stopped in a bucket (`RETENTION`).
    pub retention: Coll<'s, ((Uuid, u64), i64)>,
    /// A viewer's history of a video (`WATCH_HISTORY`).
    pub watch_history: Coll<'s, ((Uuid, Uuid), Watched)>,
}

/// Builds every view from what the sources read (updates at their log
/// time).
pub fn build<'s>(sourced: Sourced<'s>, seeds: Seeds<'s>, windows: &Windows) -> Built<'s> {
    let Sourced {
        catalog,
        media,
        playback,
        progress,
    } = sourced;
    // The catalog: each video's latest entry, `None` once deleted.
    let catalog_now =
        catalog
            .map(|c| (c.video_id, (c.order, c.entry)))
            .reduce_total("CatalogLatest", |_video, input, output| {
                let ((_, entry), _) = input.last_key_value().expect("called with values");
                output.push((entry.clone(), 1));
            });
    let live = catalog_now.clone().flat_map(|(v, e)| e.map(|e| (v, e)));
    let deleted = catalog_now.filter(|(_, e)| e.is_none()).map(|(v, _)| v);

    // Media: each video's pipeline state.
    let media_now =
        media
            .map(|m| (m.video_id, (m.order, m.change)))
            .reduce_total("MediaState", |_video, input, output| {
                if let Some(s) = MediaState::fold(input.iter().map(|((o, c), _)| (o, c))) {
                    output.push((s, 1));
                }
            });
    let video_status = media_now
        .clone()
        .antijoin(deleted)
        .map(|(v, s)| rows::video_status(v, &s));
    let durations = media_now.clone().flat_map(|(v, s)| s.duration_ms.map(|d| (v, d)));

    // Sessions, each with its video's duration, `None` until known. The
    // durations are few and rarely change, so they are joined inside the
    // session's accumulator: a heartbeat moves one session through one
    // operator. Seven readers take each change of a summary, each a few of
    // its fields, so the summary is shared rather than copied to each. A
    // session closes after a while without records (`definitions`): its
    // summary is re-sent as closed and forgotten, and every reader below
    // keeps per session only what is open, folding what closed into keys
    // that do not grow with history (videos, viewers, buckets).
    let lingering = windows.clone();
    let sessions = playback
        .clone()
        .map(|p| (p.session_id, (p.order, p.logged_at, p.video_id, p.user_id, p.beacon)))
        .accumulate_beside::<SessionAccumulator, _, _, _, _>(
            "Session",
            durations,
            |s| s.video_id,
            move |s| Some(lingering.linger(s)),
        );
    // What of a session a heartbeat rarely changes: its video, viewer and
    // startup time. Projected once, a change's two sides together, so a
    // heartbeat's retraction and insertion cancel here, and so does a
    // session's closing, which changes no sum.
    let states = project_changes(sessions.clone(), "SessionStates", |_, (_, s, _)| {
        Some((s.video_id, s.user_id, s.startup_ms))
    });
    // Distinct signed-in viewers (one entry per video and viewer), plus
    // one per anonymous session (a sum).
    let unique_viewers = states
        .clone()
        .flat_map(|(v, u, _)| u.map(|u| (v, u)))
        .concat(seeds.viewers)
        .distinct_total()
        .map(|(v, _)| v)
        .concat(states.clone().filter(|(_, u, _)| u.is_none()).map(|(v, ..)| v))
        .concat(seeds.anonymous)
        .count_total();

    let totals = sum_changes(sessions.clone(), "SessionTotals", |_, (_, s, d)| {
        Some((s.video_id, VideoSums::of(s, *d)))
    })
    .concat(seeds.totals);
    // The latest start: open sessions' starts (a late record can move one
    // earlier) beside the latest of those closed.
    let last_view = project_changes(sessions.clone(), "SessionStarts", |sid, (phase, s, _)| {
        Some(((s.video_id, spread(*sid)), (*phase, s.started_ms)))
    })
    .concat(seeds.last_view);
    let last_view = fold_closed::<_, _, Latest<i64>, _, _>(last_view, "LastView1", |_k, open, closed, output| {
        let open = open.last_key_value().map(|(ms, _)| *ms);
        output.push((open.max(closed.copied()).expect("called with values"), 1))
    })
    .map(|((v, _), ms)| (v, ms))
    .reduce_total("LastView2", |_k, input, output| {
        output.push((*input.last_key_value().expect("called with values").0, 1))
    });
    // Every video with sessions has a p95 (`None` without any first
    // frame), over a histogram of startup times (`startup_bucket`).
    let startup_p95 = states
        .map(|(v, _, startup_ms)| (v, startup_ms.map(startup_bucket)))
        .concat(seeds.startups)
        .reduce_total("StartupP95", |_v, input, output| {
            let values: Vec<(u64, i64)> = input.iter().filter_map(|(v, c)| v.map(|ms| (ms, *c as i64))).collect();
            output.push((percentile(&values, 95), 1));
        });
    // `totals` changes with every heartbeat; it is summed and joined in one
    // operator with everything else `video_stats` and `qoe` show, which
    // changes only when a session starts or first shows a frame.
    let per_session = unique_viewers.join(last_view).join(startup_p95);
    let figures = join_sums(totals, per_session, "VideoFigures", |v, t, ((u, last), p95)| {
        (
            *v,
            VideoFigures {
                totals: *t,
                unique_viewers: *u as i64,
                last_view_ms: *last,
                startup_p95_ms: *p95,
            },
        )
    })
    .arrange_by_key_named("VideoFigures");

    // Stored as a histogram of where sessions stopped ([`crate::stored`]).
    let retention = project_changes(sessions.clone(), "RetentionBuckets", |_, (_, s, d)| match d {
        Some(d) if s.startup_ms.is_some() => Some((s.video_id, s.retention_bucket(*d))),
        _ => None,
    })
    .concat(seeds.retention)
    .reduce_total("Retention", |_v, input, output| {
        output.extend(input.iter().map(|(bucket, sessions)| ((*bucket, *sessions as i64), 1)));
    })
    .map(|(v, (bucket, sessions))| ((v, bucket), sessions));

    // A viewer's history of a video: its open sessions beside what its
    // closed ones amount to.
    let watch_history = project_changes(sessions.clone(), "SessionHistory", |sid, (phase, s, d)| {
        s.user_id.map(|u| ((u, s.video_id), (*phase, s.watched(*sid, *d))))
    })
    .concat(seeds.history);
    let watch_history =
        fold_closed::<_, _, HistoryFold, _, _>(watch_history, "WatchHistory", |_k, open, closed, output| {
            let mut h = closed.copied().unwrap_or_default();
            for (watched, n) in open {
                for _ in 0..*n {
                    h.add(watched);
                }
            }
            output.push(((h.last_position_ms, h.played_ms, h.completed, h.last_ms()), 1));
        });

    let concurrent_viewers = {
        let recent = distinct_in_window(
            playback.clone().map(|p| ((p.session_id, p.video_id), p.logged_at)),
            windows.concurrent,
            "Recent",
        );
        // Only open sessions: one closes after the window has passed its
        // last record (its linger is at least the window).
        let idle = project_changes(sessions, "Idle", |sid, (phase, s, _)| {
            (*phase == Phase::Open && !s.watching()).then_some(*sid)
        });
        recent
            .antijoin(idle)
            .map(|(_, v)| v)
            .count_total()
            .map(|(v, n)| rows::concurrent_viewers(v, n as i64))
    };

    let trending = {
        let starts = playback
            .filter(|p| matches!(p.beacon, Beacon::Start))
            .map(|p| ((p.video_id, p.session_id), p.logged_at))
            .concat(seeds.starts);
        let names: Vec<String> = windows.trending.iter().map(|(n, _)| n.clone()).collect();
        let top = windows.trending_top;
        let mut counts = None;
        for (w, (_, len)) in windows.trending.iter().enumerate() {
            let w = w as u8;
            let c = distinct_in_window(starts.clone(), *len, "Started")
                .map(move |(v, _)| (w, v))
                .count_total();
            counts = Some(match counts {
                None => c,
                Some(all) => c.concat(all),
            });
        }
        counts
            .expect("at least one trending window")
            // Most views first, then the smaller id.
            .map(|((w, v), n)| ((w, spread(v)), (-(n as i64), v)))
            .reduce_total("TopK1", move |_k, input, output| {
                for (val, _) in input.iter().take(top) {
                    output.push((*val, 1));
                }
            })
            .map(|((w, _), val)| (w, val))
            .reduce_total("TopK2", move |_w, input, output| {
                for (rank, (val, _)) in input.iter().take(top).enumerate() {
                    output.push(((rank as i64 + 1, *val), 1));
                }
            })
            .map(move |(w, (rank, (n, v)))| rows::trending(&names[w as usize], rank, v, -n))
    };

    // A video's figures change with every batch of heartbeats; their
    // changes are added up per genre within each batch before they are
    // exchanged and counted, so `genre_stats` takes one update per genre
    // and batch rather than two per video (their arrangement took 2.7 % of
    // a replay's worker time; BENCHMARKS.md, "Run 33").
    let genres = live.clone().flat_map(|(v, e)| e.genre.map(|g| (v, g)));
    let genre_stats = genres
        .clone()
        .explode(|(_, g)| {
            Some((
                g,
                GroupSums {
                    videos: 1,
                    ..GroupSums::default()
                },
            ))
        })
        .concat(sum_changes(
            genres
                .arrange_by_key_named("Genres")
                .join_core(figures.clone(), |_, g, f| Some((g.clone(), f.totals))),
            "GenreSums",
            |g, t| {
                Some((
                    g.clone(),
                    GroupSums {
                        views: t.sessions,
                        played_ms: t.played_ms,
                        ..GroupSums::default()
                    },
                ))
            },
        ))
        .count_total()
        .map(|(g, t)| rows::genre_stats(&g, &t));

    let owners = live.map(|(v, e)| (v, e.owner_id));
    let storage_usage = owners
        .clone()
        .explode(|(_, o)| {
            Some((
                o,
                GroupSums {
                    videos: 1,
                    ..GroupSums::default()
                },
            ))
        })
        .concat(
            owners
                .join(media_now.map(|(v, s)| (v, s.source_bytes + s.output_bytes)))
                .explode(|(_, (o, bytes))| {
                    Some((
                        o,
                        GroupSums {
                            bytes: bytes as i64,
                            ..GroupSums::default()
                        },
                    ))
                }),
        )
        .count_total()
        .map(|(o, t)| rows::storage_usage(o, &t));

    Built {
        rows: vec![
            (View::VideoStatus, video_status),
            (View::ConcurrentViewers, concurrent_viewers),
            (View::Trending, trending),
            (View::GenreStats, genre_stats),
            (View::StorageUsage, storage_usage),
            (View::SourceProgress, progress),
        ],
        figures,
        retention,
        watch_history,
    }
}
