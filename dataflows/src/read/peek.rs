//! Peeks: reading a view at a timestamp, across every worker of every
//! process.
//!
//! A view's arrangement is sharded by key over all workers, so a peek is
//! itself a small timely dataflow: a lookup of keys goes to the workers
//! that own them (routed by the key's hash, exactly as the arrangement
//! routes its updates), any other request to every worker; each waits
//! until its copy of the view is complete at the peek's time `as_of` (the
//! arrangement's upper has passed it), reads its shard with a cursor per
//! batch — one seek per key for key lookups, a seek and a scan for ranges
//! — adds the rows up, and sends them back to the worker that took the
//! request, which answers the caller once every worker has replied. Because every
//! worker reads at the same `as_of`, and every view is complete there, a
//! peek (or several at one `as_of`) never sees half an update.
//!
//! Subscriptions start the same way: the request also reads the updates
//! after `as_of` that the shard already holds, and registers a tap for
//! the updates still to come (see [`super::subscribe`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::InputHandle;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::Operator;
use tokio::sync::oneshot;

use super::request::{PeekError, PeekRequest, RequestKind};
use super::store::{Answer, ViewStore};
use super::subscribe::{Subscribers, Tap, Taps, Update};
use crate::datum::Row;

/// The views' arrangements on one worker, in [`View::ALL`] order.
pub(crate) type Traces = Rc<RefCell<Vec<Box<dyn ViewStore>>>>;

/// One worker's share of a peek's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeekResponse {
    id: u64,
    origin: usize,
    rows: Result<Vec<(Row, Row)>, PeekError>,
    /// For a subscription: the shard's updates after `as_of` that it held
    /// when its tap was registered.
    changes: Vec<Update>,
}

/// A peek waiting for its replies on the origin worker.
pub(crate) struct Waiting {
    replies_left: usize,
    rows: Vec<(Row, Row)>,
    error: Option<PeekError>,
    reply: oneshot::Sender<Result<Vec<(Row, Row)>, PeekError>>,
}

/// Peeks this worker took and still owes an answer, by id.
pub(crate) type Outstanding = Rc<RefCell<HashMap<u64, Waiting>>>;

impl Waiting {
    pub(crate) fn new(replies: usize, reply: oneshot::Sender<Result<Vec<(Row, Row)>, PeekError>>) -> Self {
        Self {
            replies_left: replies,
            rows: Vec::new(),
            error: None,
            reply,
        }
    }
}

/// Builds the peek dataflow on a worker: requests sent to the returned
/// input are answered from `traces`, and answers delivered through
/// `outstanding`.
pub(crate) fn peek_dataflow(
    worker: &mut timely::worker::Worker,
    traces: Traces,
    outstanding: Outstanding,
    taps: Taps,
    subscribers: Subscribers,
) -> InputHandle<u64, CapacityContainerBuilder<Vec<PeekRequest>>> {
    let mut input = InputHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        // The input handle only buffers for an exchange until its epoch
        // closes; an operator's output is sent at the end of each run.
        let requests = input.to_stream(scope).unary(Pipeline, "PeekSend", |_cap, _info| {
            |input, output| {
                input.for_each(|cap, data: &mut Vec<PeekRequest>| {
                    output.session(&cap).give_container(data);
                })
            }
        });
        requests
            .unary(Exchange::new(|r: &PeekRequest| r.route), "Peek", move |_cap, info| {
                let activator = scope.activator_for(info.address);
                let mut pending = Vec::new();
                move |input, output| {
                    input.for_each(|cap, data: &mut Vec<PeekRequest>| {
                        let Some(cap) = cap.retain_least(output.output_index()) else {
                            return;
                        };
                        for request in data.drain(..) {
                            if request.kind == RequestKind::Unsubscribe {
                                // It may still be waiting to start.
                                pending.retain(|(_, r): &(_, PeekRequest)| {
                                    (r.id, r.origin) != (request.id, request.origin)
                                });
                                taps.borrow_mut().remove(&(request.origin, request.id));
                            } else {
                                pending.push((cap.clone(), request));
                            }
                        }
                    });
                    let mut traces = traces.borrow_mut();
                    pending.retain(|(cap, request): &(_, PeekRequest)| {
                        match traces[request.view as usize].answer(request) {
                            None => true,
                            Some(answer) => {
                                let (rows, changes) = match answer {
                                    Ok(Answer { rows, changes, upper }) => {
                                        if request.kind == RequestKind::Subscribe {
                                            // A subscription to several keys has a tap per key.
                                            taps.borrow_mut().entry((request.origin, request.id)).or_default().push(
                                                Tap {
                                                    view: request.view,
                                                    selector: request.selector.clone(),
                                                    from: upper,
                                                },
                                            );
                                        }
                                        (Ok(rows), changes)
                                    }
                                    Err(e) => (Err(e), Vec::new()),
                                };
                                output.session(cap).give(PeekResponse {
                                    id: request.id,
                                    origin: request.origin,
                                    rows,
                                    changes,
                                });
                                false
                            }
                        }
                    });
                    if !pending.is_empty() {
                        activator.activate_after(std::time::Duration::from_millis(1));
                    }
                }
            })
            .sink(
                Exchange::new(|r: &PeekResponse| r.origin as u64),
                "PeekReply",
                move |(input, _frontier)| {
                    input.for_each(|_cap, data| {
                        let mut outstanding = outstanding.borrow_mut();
                        for response in data.drain(..) {
                            let Some(w) = outstanding.get_mut(&response.id) else {
                                if let Some(s) = subscribers.borrow_mut().get_mut(&response.id) {
                                    s.started(response.rows, response.changes);
                                }
                                continue;
                            };
                            match response.rows {
                                Ok(rows) => w.rows.extend(rows),
                                Err(e) => w.error = Some(e),
                            }
                            w.replies_left -= 1;
                            if w.replies_left == 0 {
                                let w = outstanding.remove(&response.id).expect("present");
                                let _ = w.reply.send(match w.error {
                                    Some(e) => Err(e),
                                    None => Ok(w.rows),
                                });
                            }
                        }
                    });
                },
            );
    });
    input
}
