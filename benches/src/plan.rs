//! How long and how much to measure: the full run and the quick one.

use std::time::Duration;

/// How long and how much to measure.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Warm-up of each workload on each contender, before anything counts.
    pub(crate) warmup: Duration,
    /// Measured rounds; each runs every workload once on each contender.
    pub(crate) rounds: usize,
    /// Sequential unary calls, per round and contender.
    pub(crate) latency_time: Duration,
    /// How long each contender calls in turn during those rounds, before
    /// the next takes over.
    pub(crate) latency_turn: Duration,
    /// Pipelined unary calls (`add`, then `echo`), per round and contender.
    pub(crate) pipelined_time: Duration,
    /// How long each contender calls in turn during those rounds.
    pub(crate) pipelined_turn: Duration,
    /// Calls in flight in the pipelined workloads.
    pub(crate) in_flight: usize,
    /// Bytes of each `echo` payload.
    pub(crate) echo_size: usize,
    /// Connection counts of the many-connection workload.
    pub(crate) conn_counts: Vec<usize>,
    /// `slow_add` calls fired at once, spread over the connections, per
    /// round, contender and connection count.
    pub(crate) burst_calls: usize,
    /// Items of the one stream, per turn, round and contender.
    pub(crate) stream_items: u64,
    /// Turns of the one stream and of the fan-out workload per round and
    /// contender.
    pub(crate) stream_turns: usize,
    /// Concurrent streams of the fan-out workload.
    pub(crate) fan_streams: usize,
    /// Items of each stream of the fan-out workload.
    pub(crate) fan_items: u64,
    /// The slow consumer's pause after each item.
    pub(crate) slow_pause: Duration,
    /// Calls made (or items streamed, times 10) while counting allocations.
    pub(crate) alloc_calls: u64,
}

impl Plan {
    /// About two minutes per runtime setup.
    pub(crate) fn full() -> Plan {
        Plan {
            warmup: Duration::from_millis(300),
            rounds: 5,
            latency_time: Duration::from_millis(500),
            latency_turn: Duration::from_millis(10),
            pipelined_time: Duration::from_millis(750),
            pipelined_turn: Duration::from_millis(125),
            in_flight: 256,
            echo_size: 1024,
            conn_counts: vec![1, 4, 16],
            burst_calls: 960,
            stream_items: 500_000,
            stream_turns: 8,
            fan_streams: 64,
            fan_items: 10_000,
            slow_pause: Duration::from_millis(1),
            alloc_calls: 20_000,
        }
    }

    /// A few seconds per runtime setup: every contender and workload, few
    /// samples.
    pub(crate) fn quick() -> Plan {
        Plan {
            warmup: Duration::from_millis(30),
            rounds: 2,
            latency_time: Duration::from_millis(80),
            latency_turn: Duration::from_millis(5),
            pipelined_time: Duration::from_millis(120),
            pipelined_turn: Duration::from_millis(40),
            in_flight: 256,
            echo_size: 1024,
            conn_counts: vec![1, 4, 16],
            burst_calls: 192,
            stream_items: 20_000,
            stream_turns: 1,
            fan_streams: 64,
            fan_items: 1_000,
            slow_pause: Duration::from_millis(1),
            alloc_calls: 1_000,
        }
    }
}
