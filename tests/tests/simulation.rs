//! Deterministic network simulation (turmoil): a reconnecting client and a
//! server on simulated hosts, through the `Connector` and `Listener`
//! seams, with partitions, held links and server crashes and restarts
//! drawn from a seed. Every call ends with its right result or a
//! documented error, never later than its deadline (simulated time), and
//! once the faults stop the client works again.
//!
//! 200 seeds run by default; `SIM_SEEDS=n` runs more, `SIM_SEED=s` one
//! seed alone (a failure names its seed).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use cmdstream::{
    Backoff, CallOptions, Client, Connector, Endpoint, Error, Listener, PeerAddr, Reconnect, Server,
};
use cmdstream_tests::calc::{Calc, CalcServer, Probe, INFO};
use cmdstream_tests::CalcClient;
use tokio::time::Instant;

const PORT: u16 = 7000;
const TIMEOUT: Duration = Duration::from_millis(800);
/// Simulated time passes in 1 ms ticks: a call may end a tick or two late.
const SLACK: Duration = Duration::from_millis(5);
const CALLS: u64 = 120;

/// Dials through the simulated network.
struct SimNet;

impl Connector for SimNet {
    type Io = turmoil::net::TcpStream;

    async fn connect(&self, endpoint: &Endpoint) -> io::Result<Self::Io> {
        turmoil::net::TcpStream::connect(endpoint.to_string()).await
    }
}

/// Accepts on the simulated network.
struct SimListener(turmoil::net::TcpListener);

impl Listener for SimListener {
    type Io = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Io, PeerAddr)> {
        let (stream, addr): (_, SocketAddr) = self.0.accept().await?;
        Ok((stream, PeerAddr::Tcp(addr)))
    }
}

/// A seeded xorshift: the scenario's draws follow from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

/// What a call may end with under these faults.
fn documented(error: &Error) -> bool {
    matches!(
        error,
        Error::Timeout | Error::ConnectionLost { .. } | Error::Unavailable(_)
    )
}

/// What one simulation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Run {
    /// Simulated time, start to end.
    elapsed: Duration,
    ok: u64,
    /// Calls that ended with a documented error.
    failed: u64,
    crashes: u64,
}

/// One simulation: what it did, or what went wrong.
fn scenario(seed: u64) -> Result<Run, String> {
    let counts = Rc::new(RefCell::new(Run::default()));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(600))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(15))
        .build();

    sim.host("server", || async {
        let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
        let server = Server::builder()
            .keepalive(Some(Duration::from_millis(300)))
            .build(CalcServer::new(Calc::new(Probe::default())));
        server.serve(SimListener(listener)).await?;
        Ok(())
    });

    let seen = counts.clone();
    sim.client("client", async move {
        // No jitter: the backoff follows from the seed's events alone.
        let policy = Reconnect::new().lazy(true).backoff(
            Backoff::new(Duration::from_millis(10), Duration::from_millis(400)).jitter(0.0),
        );
        let client = Client::builder()
            .connector(SimNet)
            .keepalive(Some(Duration::from_millis(300)))
            .connect_timeout(Duration::from_millis(300))
            .handshake_timeout(Duration::from_millis(300))
            .call_options(CallOptions::new().timeout(TIMEOUT))
            .reconnect(policy)
            .connect(format!("server:{PORT}"), &INFO)
            .await?;
        let client = CalcClient::new(client);

        // Faults on the link, from the client's side of the seed.
        let faults = tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ 0xfa17);
            loop {
                tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
                let (cut, hold) = (
                    rng.below(2) == 0,
                    Duration::from_millis(20 + rng.below(1_500)),
                );
                if cut {
                    turmoil::partition("client", "server");
                } else {
                    turmoil::hold("client", "server");
                }
                tokio::time::sleep(hold).await;
                if cut {
                    turmoil::repair("client", "server");
                } else {
                    turmoil::release("client", "server");
                }
            }
        });

        let mut rng = Rng::new(seed);
        for i in 0..CALLS {
            let started = Instant::now();
            if rng.below(4) == 0 {
                let from = rng.below(30) as u32;
                match client.countdown(from) {
                    Ok(mut items) => {
                        let mut want = from;
                        let mut ended_early = false;
                        while let Some(item) = items.next().await {
                            match item {
                                Ok(n) if n == want && !ended_early => {
                                    want = want.wrapping_sub(1);
                                }
                                Ok(n) => {
                                    return Err(format!(
                                        "countdown({from}): {n} where {want} was due"
                                    )
                                    .into())
                                }
                                Err(e) if documented(&e) => {
                                    ended_early = true;
                                    seen.borrow_mut().failed += 1;
                                }
                                Err(e) => return Err(format!("countdown({from}): {e:?}").into()),
                            }
                        }
                        if !ended_early && want != u32::MAX {
                            return Err(format!(
                                "countdown({from}) ended at {want} without an error"
                            )
                            .into());
                        }
                        if !ended_early {
                            seen.borrow_mut().ok += 1;
                        }
                    }
                    Err(e) if documented(&e) => seen.borrow_mut().failed += 1,
                    Err(e) => return Err(format!("countdown({from}) did not open: {e:?}").into()),
                }
            } else {
                match client.add(i as i64, 1).await {
                    Ok(v) if v == i as i64 + 1 => seen.borrow_mut().ok += 1,
                    Ok(v) => return Err(format!("add({i}, 1) = {v}").into()),
                    Err(e) if documented(&e) => seen.borrow_mut().failed += 1,
                    Err(e) => return Err(format!("add({i}, 1): {e:?}").into()),
                }
            }
            let took = started.elapsed();
            if took > TIMEOUT + SLACK {
                return Err(
                    format!("call {i} took {took:?}, past its {TIMEOUT:?} deadline").into(),
                );
            }
        }

        // The faults stop; the client must work again within a few
        // backoffs and keepalive periods.
        faults.abort();
        turmoil::repair("client", "server");
        turmoil::release("client", "server");
        let recovered = Instant::now();
        loop {
            match client.add(2, 2).await {
                Ok(4) => break,
                Ok(v) => return Err(format!("add(2, 2) = {v}").into()),
                Err(e) if documented(&e) => {}
                Err(e) => return Err(format!("after the faults: {e:?}").into()),
            }
            if recovered.elapsed() > Duration::from_secs(30) {
                return Err("no call succeeded within 30 s of the faults ending".into());
            }
        }
        Ok(())
    });

    // The server crashes and comes back, from the simulation's side of
    // the seed.
    let mut rng = Rng::new(seed ^ 0xc4a5);
    let mut down_for: Option<u64> = None;
    loop {
        match sim.step() {
            Ok(true) => {
                let mut run = counts.borrow().clone();
                run.elapsed = sim.elapsed();
                return Ok(run);
            }
            Ok(false) => {}
            Err(e) => return Err(e.to_string()),
        }
        match &mut down_for {
            Some(0) => {
                sim.bounce("server");
                down_for = None;
            }
            Some(left) => *left -= 1,
            None if rng.below(3_000) == 0 => {
                sim.crash("server");
                counts.borrow_mut().crashes += 1;
                down_for = Some(50 + rng.below(1_500));
            }
            None => {}
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200u64);
    (1..=n).collect()
}

#[test]
fn calls_hold_up_under_partitions_held_links_and_crashes_for_every_seed() {
    let seeds = seeds();
    // Two threads of seeds: each simulation runs on the thread it starts on.
    let halves: Vec<Vec<u64>> = vec![
        seeds.iter().copied().step_by(2).collect(),
        seeds.iter().copied().skip(1).step_by(2).collect(),
    ];
    let outcomes: Vec<(u64, Result<Run, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = halves
            .into_iter()
            .map(|half| {
                s.spawn(move || {
                    half.into_iter()
                        .map(|seed| (seed, scenario(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(seed, r)| r.as_ref().err().map(|e| format!("seed {seed}: {e}")))
        .collect();
    assert!(
        failures.is_empty(),
        "{} seeds failed (rerun one with SIM_SEED=n):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The faults did happen: calls failed, servers crashed, and most calls
    // still went through.
    let runs: Vec<&Run> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let (ok, failed, crashes) = runs.iter().fold((0, 0, 0), |(o, f, c), r| {
        (o + r.ok, f + r.failed, c + r.crashes)
    });
    if runs.len() >= 50 {
        assert!(
            failed > 0 && crashes > 0,
            "no fault bit: {ok} ok, {failed} failed, {crashes} crashes"
        );
        assert!(ok > failed, "{ok} ok, {failed} failed");
    }
    println!(
        "{} seeds: {ok} calls ok, {failed} ended with a documented error, {crashes} server crashes",
        runs.len()
    );
}

#[test]
fn a_seed_replays_the_same_simulation() {
    // The same seed twice: the same verdict and the same simulated time.
    for seed in [7, 99] {
        assert_eq!(scenario(seed), scenario(seed), "seed {seed}");
    }
}
