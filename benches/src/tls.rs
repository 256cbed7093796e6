//! The TLS rows: cmdstream over TLS against the raw baseline over the same
//! TLS (the same frames through tokio-rustls, ring provider) and tonic over
//! TLS (its `tls-ring`), with one certificate made at start for all three.
//! Pipelined `add` and sequential latency, in each runtime setup, rounds
//! alternating as in the main run.

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_rustls::rustls;

use crate::contenders::Target;
use crate::plan::Plan;
use crate::raw::{self, RawClient};
use crate::report;
use crate::runtime::{listen, run_on, Setup};
use crate::service::{BenchClient, BenchServer, Bencher};
use crate::side_by_side::{unary_rounds, UnaryFigures};
use crate::tonic_peer::{self, TonicClient};
use crate::BenchError;

/// Who is measured over TLS, in the order of the table's columns.
const WHO: [&str; 3] = ["cmdstream", "tonic", "raw"];

/// The three contenders' figures over TLS, in [`WHO`] order.
pub(crate) struct TlsComparison(pub(crate) [UnaryFigures; 3]);

/// A CA and a certificate it issued for `localhost`, PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki() -> Result<Pki, BenchError> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let e = |e: rcgen::Error| BenchError::new(format!("certificates: {e}"));
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(e)?).map_err(e)?;
    let key = KeyPair::generate().map_err(e)?;
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .map_err(e)?
        .signed_by(&key, &ca)
        .map_err(e)?;
    Ok(Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The raw baseline's TLS: the same provider and protocol versions as
/// cmdstream's.
fn raw_tls(
    pki: &Pki,
) -> Result<(tokio_rustls::TlsAcceptor, tokio_rustls::TlsConnector), BenchError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let e = |e: &dyn std::fmt::Display| BenchError::new(format!("raw TLS: {e}"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|x| e(&x))?;
    let key = PrivateKeyDer::from_pem_slice(pki.key.as_bytes()).map_err(|x| e(&x))?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|x| e(&x))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|x| e(&x))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
        roots.add(ca.map_err(|x| e(&x))?).map_err(|x| e(&x))?;
    }
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|x| e(&x))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((Arc::new(server).into(), Arc::new(client).into()))
}

/// Where the three TLS servers listen.
struct TlsAddrs {
    cmdstream: SocketAddr,
    tonic: SocketAddr,
    raw: SocketAddr,
}

/// Serves the three over TLS on a thread of their own until `stopped`.
fn start_servers(
    setup: Setup,
    pki: Arc<Pki>,
    acceptor: tokio_rustls::TlsAcceptor,
    stopped: oneshot::Receiver<()>,
) -> Result<(TlsAddrs, std::thread::JoinHandle<Result<(), BenchError>>), BenchError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("bench-tls-server".into())
        .spawn(move || -> Result<(), BenchError> {
            let rt = setup.runtime()?;
            run_on(&rt, async move {
                let (cmd_l, cmdstream) = listen().await?;
                let (tonic_l, tonic) = listen().await?;
                let (raw_l, raw) = listen().await?;
                let _ = ready_tx.send(TlsAddrs {
                    cmdstream,
                    tonic,
                    raw,
                });
                let tls =
                    cmdstream::tls::ServerTls::from_pem(pki.cert.as_bytes(), pki.key.as_bytes())
                        .build()?;
                let server = cmdstream::Server::builder()
                    .tls(tls)
                    .build(BenchServer::new(Bencher));
                let serving = tokio::spawn({
                    let s = server.clone();
                    async move { s.serve(cmd_l).await }
                });
                let (tonic_stop, tonic_stopped) = oneshot::channel::<()>();
                let tonic = tokio::spawn({
                    let pki = pki.clone();
                    async move {
                        let identity = (pki.cert.as_bytes(), pki.key.as_bytes());
                        tonic_peer::serve_tls(tonic_l, identity, async move {
                            let _ = tonic_stopped.await;
                        })
                        .await
                    }
                });
                let raw = tokio::spawn(raw::serve_tls(raw_l, acceptor));
                let _ = stopped.await;
                raw.abort();
                let _ = tonic_stop.send(());
                let grace = Duration::from_secs(5);
                tokio::time::timeout(grace, server.shutdown())
                    .await
                    .map_err(|_| BenchError::new("cmdstream over TLS did not shut down"))?;
                let _ = serving.await;
                let _ = tokio::time::timeout(grace, tonic).await;
                Ok::<_, BenchError>(())
            })?
        })?;
    let addrs = ready_rx
        .recv()
        .map_err(|_| BenchError::new("the TLS servers did not start"))?;
    Ok((addrs, thread))
}

/// Measures the three over TLS in `setup`.
pub(crate) fn run(
    setup: Setup,
    plan: &Plan,
    watchdog: Duration,
) -> Result<TlsComparison, BenchError> {
    let pki = Arc::new(pki()?);
    let (acceptor, connector) = raw_tls(&pki)?;
    let (stop, stopped) = oneshot::channel();
    let (addrs, thread) = start_servers(setup, pki.clone(), acceptor, stopped)?;
    let rt = setup.runtime()?;
    let plan = plan.clone();
    let result = run_on(&rt, async move {
        let work = measure(addrs, pki, connector, plan);
        tokio::time::timeout(watchdog, work)
            .await
            .unwrap_or_else(|_| {
                Err(BenchError::new(
                    "the TLS measurements did not finish in time: a call hangs",
                ))
            })
    })
    .and_then(|r| r);
    rt.shutdown_timeout(Duration::from_secs(5));
    let _ = stop.send(());
    let served = thread
        .join()
        .map_err(|_| BenchError::new("the TLS server thread panicked"))?;
    let value = result?;
    served?;
    Ok(value)
}

async fn measure(
    addrs: TlsAddrs,
    pki: Arc<Pki>,
    connector: tokio_rustls::TlsConnector,
    plan: Plan,
) -> Result<TlsComparison, BenchError> {
    let tls = cmdstream::tls::ClientTls::new()
        .ca_pem(pki.ca.as_bytes())
        .build()?;
    let builder = cmdstream::Client::builder().tls(tls);
    let cmdstream =
        BenchClient::connect_with(builder, ("localhost", addrs.cmdstream.port())).await?;
    let targets = [
        Target::Cmdstream(cmdstream),
        Target::Tonic(TonicClient::connect_tls(addrs.tonic, pki.ca.as_bytes()).await?),
        Target::Raw(RawClient::connect_tls(addrs.raw, &connector).await?),
    ];
    let figures = unary_rounds(&targets, &plan).await?;
    let figures = figures
        .try_into()
        .map_err(|_| BenchError::new("three contenders, three figures"))?;
    Ok(TlsComparison(figures))
}

/// The goal on pipelined `add` over TLS, cmdstream against raw.
const PIPE_GOAL: f64 = 0.7;

/// The TLS section of the report for one setup.
pub(crate) fn table(setup: Setup, c: &TlsComparison, plan: &Plan) -> String {
    let [me, tonic, raw] = &c.0;
    let mut s = String::new();
    let _ = writeln!(s, "\n### Setup {}: over TLS\n", setup.letter());
    let _ = writeln!(s, "| metric | {} | {} | {} |", WHO[0], WHO[1], WHO[2]);
    let _ = writeln!(s, "|---|---:|---:|---:|");
    let micros = |ns: u64| format!("{:.1} µs", ns as f64 / 1000.0);
    let _ = writeln!(
        s,
        "| sequential `add` latency p50 | {} | {} | {} |",
        micros(me.seq_p50),
        micros(tonic.seq_p50),
        micros(raw.seq_p50)
    );
    let rate = report::rate;
    let _ = writeln!(
        s,
        "| pipelined `add` calls/s ({} in flight) | {} | {} | {} |",
        plan.in_flight,
        rate(me.pipe_add.spread()),
        rate(tonic.pipe_add.spread()),
        rate(raw.pipe_add.spread())
    );
    let pipe = me.pipe_add.ratio_to(&raw.pipe_add);
    let _ = writeln!(s, "\n| ratio over TLS | cmdstream/tonic | cmdstream/raw |");
    let _ = writeln!(s, "|---|---:|---:|");
    let _ = writeln!(
        s,
        "| sequential `add` latency p50 | {:.2} | {:.2} |",
        me.seq_p50 as f64 / tonic.seq_p50.max(1) as f64,
        me.seq_p50 as f64 / raw.seq_p50.max(1) as f64
    );
    let _ = writeln!(
        s,
        "| pipelined `add` calls/s | {:.2} | {pipe:.2} |",
        me.pipe_add.ratio_to(&tonic.pipe_add)
    );
    let _ = writeln!(
        s,
        "\nTarget: pipelined `add` over TLS, cmdstream/raw ≥ {PIPE_GOAL}: {pipe:.2}, {}.",
        if pipe >= PIPE_GOAL {
            "met"
        } else {
            "**missed**"
        }
    );
    s
}
