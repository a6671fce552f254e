//! Taking fetched Kafka records off the client's queue a batch at a time.
//!
//! The rdkafka crate hands out one message per call. `StreamConsumer::recv`
//! registers a waker, pops one event, wraps it in an `Arc`, and unregisters
//! the waker again, for every record. librdkafka can pop many fetched
//! messages from a queue in one call, `rd_kafka_consume_batch_queue` (what
//! confluent-kafka-python's `Consumer.consume` is built on), and the crate
//! does not expose it, so this module does, for the consumer's own queue
//! and nothing else. Batches read a backlog about 30 % faster, with a
//! fifth less CPU (BENCHMARKS.md, "Reading Kafka in batches").
//!
//! A message that carries an error (a broker went away, an offset is out
//! of range) has no record in it. librdkafka goes on fetching after it, so
//! the records popped beside it are returned and the error is logged; an
//! error is returned only when a pop gave nothing else. The records'
//! positions have already moved past them inside the client, so dropping a
//! batch because one message in it was an error would lose them.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::log::Record;

/// A consumer and a handle on the queue its fetched messages arrive on.
pub(super) struct FetchQueue {
    queue: *mut rd::rd_kafka_queue_t,
    // Owned only to outlive `queue`, which `Drop` releases first.
    _consumer: BaseConsumer,
}

// SAFETY: librdkafka's queues are locked internally and may be used from any
// thread; `pop` takes `&mut self`, so one thread pops at a time.
unsafe impl Send for FetchQueue {}

impl FetchQueue {
    /// Takes over `consumer`, once it is assigned its partitions.
    pub(super) fn new(consumer: BaseConsumer) -> Result<Self, KafkaError> {
        // SAFETY: the client pointer is valid for as long as `consumer`, which
        // this struct owns; the returned handle is released in `Drop`.
        let queue = unsafe { rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if queue.is_null() {
            return Err(KafkaError::ClientCreation(
                "the consumer has no queue (it needs a group.id)".into(),
            ));
        }
        Ok(Self {
            queue,
            _consumer: consumer,
        })
    }

    /// Appends up to `max` records of `topic` to `out`, waiting up to
    /// `timeout` for the batch to fill (zero: only what is already fetched).
    /// Blocks the calling thread while it waits.
    pub(super) fn pop(
        &mut self,
        topic: &str,
        max: usize,
        timeout: Duration,
        out: &mut Vec<Record>,
    ) -> Result<(), KafkaError> {
        if max == 0 {
            return Ok(());
        }
        let timeout_ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        let mut messages: Vec<*mut rd::rd_kafka_message_t> = Vec::with_capacity(max);
        // SAFETY: `messages` has room for `max` pointers; librdkafka writes
        // `n` of them and gives us ownership of each.
        let n = unsafe { rd::rd_kafka_consume_batch_queue(self.queue, timeout_ms, messages.as_mut_ptr(), max) };
        if n < 0 {
            // SAFETY: reads the calling thread's last librdkafka error.
            let code = unsafe { rd::rd_kafka_last_error() };
            return Err(KafkaError::MessageConsumption(RDKafkaErrorCode::from(code)));
        }
        // SAFETY: the first `n` (at most `max`) slots were written above.
        unsafe { messages.set_len(n as usize) };
        out.reserve(messages.len());
        let before = out.len();
        let mut first_error = None;
        for &message in &messages {
            // SAFETY: each pointer is a valid message until destroyed below.
            let m = unsafe { &*message };
            if m.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                let code = RDKafkaErrorCode::from(m.err);
                tracing::warn!(%topic, partition = m.partition, error = %code, "reading Kafka");
                first_error.get_or_insert(code);
                continue;
            }
            let mut kind = rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
            // SAFETY: `message` is valid; `kind` is a valid out-pointer.
            let timestamp = unsafe { rd::rd_kafka_message_timestamp(message, &mut kind) };
            out.push(Record {
                topic: topic.to_string(),
                partition: m.partition as u32,
                offset: m.offset as u64,
                timestamp_ms: match kind {
                    rd::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => 0,
                    _ => timestamp,
                },
                // SAFETY: librdkafka keeps `len` bytes at `payload` (and
                // `key_len` at `key`) alive until the message is destroyed.
                key: unsafe { bytes(m.key, m.key_len) }.to_vec(),
                value: unsafe { bytes(m.payload, m.len) }.to_vec(),
            });
        }
        for &message in &messages {
            // SAFETY: each message is destroyed exactly once, after its
            // bytes were copied.
            unsafe { rd::rd_kafka_message_destroy(message) };
        }
        match first_error {
            Some(code) if out.len() == before => Err(KafkaError::MessageConsumption(code)),
            _ => Ok(()),
        }
    }
}

/// The `len` bytes at `ptr` (none if it is null).
///
/// # Safety
/// `ptr` must be null or point to `len` readable bytes that outlive the result.
unsafe fn bytes<'a>(ptr: *mut std::ffi::c_void, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_consumer` and is
        // released once, before the consumer it belongs to.
        unsafe { rd::rd_kafka_queue_destroy(self.queue) };
    }
}
