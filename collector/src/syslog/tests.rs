use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

struct Running {
    addr: SocketAddr,
    rx: mpsc::Receiver<SourceBatch>,
    stop: CancellationToken,
    task: JoinHandle<Result<(), SyslogError>>,
}

async fn start(config: SyslogConfig, capacity: usize) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let stop = CancellationToken::new();
    let (btx, brx) = oneshot::channel();
    let task = tokio::spawn(serve(
        "syslog_test".into(),
        config,
        tx,
        stop.clone(),
        Some(btx),
    ));
    let addr = tokio::time::timeout(Duration::from_secs(10), brx)
        .await
        .expect("bound in time")
        .expect("serve reports its address");
    Running {
        addr,
        rx,
        stop,
        task,
    }
}

fn local(mode: Mode) -> SyslogConfig {
    SyslogConfig::new(mode, "127.0.0.1:0".parse().unwrap())
}

/// Batches until `n` records came.
async fn records(
    rx: &mut mpsc::Receiver<SourceBatch>,
    n: usize,
) -> Vec<(Arc<Source>, u64, RawRecord)> {
    let mut out = Vec::new();
    while out.len() < n {
        let b = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {n} records", out.len()))
            .expect("source still running");
        for r in b.records {
            out.push((b.source.clone(), b.stream, r));
        }
    }
    assert_eq!(out.len(), n);
    out
}

fn text(r: &RawRecord) -> String {
    String::from_utf8_lossy(&r.bytes).into_owned()
}

async fn stop(mut run: Running) -> Vec<SourceBatch> {
    run.stop.cancel();
    let res = tokio::time::timeout(Duration::from_secs(10), run.task)
        .await
        .expect("serve returns after stop")
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
    let mut rest = Vec::new();
    while let Ok(b) = run.rx.try_recv() {
        rest.push(b);
    }
    rest
}

#[tokio::test]
async fn udp_datagrams_are_messages() {
    let run = start(local(Mode::Udp), 16).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = client.local_addr().unwrap();
    client
        .send_to(
            b"<13>1 2024-05-01T10:00:00Z host app - - - first\n",
            run.addr,
        )
        .await
        .unwrap();
    client
        .send_to(
            b"<14>May  1 10:00:00 host app: second\nwith a second line",
            run.addr,
        )
        .await
        .unwrap();
    client.send_to(b"\n", run.addr).await.unwrap();
    let mut run = run;
    let got = records(&mut run.rx, 2).await;
    assert_eq!(
        text(&got[0].2),
        "<13>1 2024-05-01T10:00:00Z host app - - - first"
    );
    assert_eq!(
        text(&got[1].2),
        "<14>May  1 10:00:00 host app: second\nwith a second line"
    );
    assert_eq!(got[0].0.kind, "syslog");
    assert_eq!(got[0].0.name, format!("syslog+udp://{me}"));
    assert_eq!(got[0].1, got[1].1, "one stream for the socket");
    assert!(got[0].1 >= 1 << 62);
    let rest = stop(run).await;
    let last = rest.last().expect("an end-of-stream batch");
    assert!(last.end_of_stream);
    assert_eq!(last.stream, got[0].1);
}

#[tokio::test]
async fn udp_overflow_keeps_the_head() {
    let mut cfg = local(Mode::Udp);
    cfg.max_message_bytes = 100;
    cfg.format = Some("syslog".into());
    let mut run = start(cfg, 16).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let big = vec![b'x'; 5000];
    client.send_to(&big, run.addr).await.unwrap();
    let got = records(&mut run.rx, 1).await;
    assert_eq!(got[0].2.bytes.len(), 100);
    assert_eq!(got[0].2.overflow_len, Some(5000));
    assert_eq!(got[0].0.format.as_deref(), Some("syslog"));
    stop(run).await;
}

/// Writes `data` in pieces of `step` bytes, letting each go out alone.
async fn trickle(sock: &mut TcpStream, data: &[u8], step: usize) {
    for piece in data.chunks(step) {
        sock.write_all(piece).await.unwrap();
        sock.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn tcp_mixed_framing_split_anywhere_and_end_of_stream() {
    let mut run = start(local(Mode::Tcp), 64).await;
    let data: &[u8] = b"<13>1 - lf one\n29 <13>1 - counted with\nnewline\n<13>lf two\r\n8 <14>tiny";
    let want = [
        "<13>1 - lf one",
        "<13>1 - counted with\nnewline",
        "<13>lf two",
        "<14>tiny",
    ];
    let mut streams = Vec::new();
    for step in [1, 2, 3, 5, 7, 13, data.len()] {
        let mut sock = TcpStream::connect(run.addr).await.unwrap();
        let me = sock.local_addr().unwrap();
        trickle(&mut sock, data, step).await;
        drop(sock);
        // Batches of the connection, up to its end.
        let mut got = Vec::new();
        loop {
            let b = tokio::time::timeout(Duration::from_secs(10), run.rx.recv())
                .await
                .unwrap()
                .unwrap();
            for r in b.records {
                got.push((b.source.clone(), b.stream, r));
            }
            if b.end_of_stream {
                assert!(got.iter().all(|g| g.1 == b.stream));
                break;
            }
        }
        let texts: Vec<String> = got.iter().map(|g| text(&g.2)).collect();
        assert_eq!(texts, want, "written {step} bytes at a time");
        assert_eq!(got[0].0.name, format!("syslog+tcp://{me}"));
        streams.push(got[0].1);
    }
    streams.sort_unstable();
    streams.dedup();
    assert_eq!(streams.len(), 7, "one stream per connection");
    stop(run).await;
}

#[tokio::test]
async fn tcp_overflow_and_garbage_length_prefixes() {
    let mut cfg = local(Mode::Tcp);
    cfg.max_message_bytes = 100;
    let mut run = start(cfg, 64).await;
    let mut sock = TcpStream::connect(run.addr).await.unwrap();
    let mut data = b"1000 ".to_vec();
    data.extend(std::iter::repeat_n(b'a', 1000));
    data.extend(std::iter::repeat_n(b'b', 300));
    data.extend_from_slice(b"\n12a not a length\n99999999999999999999 huge\n5 hello");
    trickle(&mut sock, &data, 97).await;
    drop(sock);
    let got = records(&mut run.rx, 5).await;
    assert_eq!(got[0].2.overflow_len, Some(1000));
    assert_eq!(&got[0].2.bytes[..], &[b'a'; 100][..]);
    assert_eq!(got[1].2.overflow_len, Some(300));
    assert_eq!(text(&got[2].2), "12a not a length");
    assert_eq!(text(&got[3].2), "99999999999999999999 huge");
    assert_eq!(text(&got[4].2), "hello");
    assert_eq!(got[4].2.line, 5);
    stop(run).await;
}

#[tokio::test]
async fn ten_megabytes_of_noise_then_a_good_connection() {
    let mut run = start(local(Mode::Tcp), 4).await;
    let mut sock = TcpStream::connect(run.addr).await.unwrap();
    let writer = tokio::spawn(async move {
        let mut x: u64 = 99;
        for _ in 0..160 {
            let chunk: Vec<u8> = (0..65536)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (x >> 56) as u8
                })
                .collect();
            sock.write_all(&chunk).await.unwrap();
        }
    });
    let mut n = 0usize;
    let mut max = 0;
    loop {
        let b = tokio::time::timeout(Duration::from_secs(30), run.rx.recv())
            .await
            .unwrap()
            .unwrap();
        n += b.records.len();
        max = max.max(b.records.iter().map(|r| r.bytes.len()).max().unwrap_or(0));
        if b.end_of_stream {
            break;
        }
    }
    writer.await.unwrap();
    assert!(n > 0);
    assert!(max <= 64 * 1024);
    let mut sock = TcpStream::connect(run.addr).await.unwrap();
    sock.write_all(b"<13>still alive\n").await.unwrap();
    let got = records(&mut run.rx, 1).await;
    assert_eq!(text(&got[0].2), "<13>still alive");
    drop(sock);
    stop(run).await;
}

#[tokio::test]
async fn tcp_backpressure_stops_reading() {
    // Channel of one batch that nobody reads.
    let mut run = start(local(Mode::Tcp), 1).await;
    let sock = TcpStream::connect(run.addr).await.unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let msg = {
        let mut m = b"16384 <13>".to_vec();
        m.extend(std::iter::repeat_n(b'x', 16384 - 4));
        m
    };
    let total = 2048usize; // 32 MiB
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = written.clone();
    let writer = tokio::spawn(async move {
        for _ in 0..total {
            wr.write_all(&msg).await.unwrap();
            w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        wr.shutdown().await.unwrap();
        let mut b = [0u8; 1];
        let _ = rd.read(&mut b).await;
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stalled = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        stalled < total / 2,
        "the sender was not slowed down: {stalled} of {total} messages written"
    );
    // Draining lets everything through.
    let got = records(&mut run.rx, total).await;
    assert!(
        got.iter()
            .all(|g| g.2.bytes.len() == 16384 && g.2.overflow_len.is_none())
    );
    tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .unwrap()
        .unwrap();
    stop(run).await;
}

#[tokio::test]
async fn udp_backpressure_drops_and_keeps_serving() {
    let mut run = start(local(Mode::Udp), 1).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..3000 {
        client
            .send_to(format!("<13>msg {i}").as_bytes(), run.addr)
            .await
            .unwrap();
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut got = 0;
    while let Ok(b) = run.rx.try_recv() {
        got += b.records.len();
    }
    assert!(got < 3000, "a full channel must drop ({got})");
    client.send_to(b"<13>after", run.addr).await.unwrap();
    let after = records(&mut run.rx, 1).await;
    assert_eq!(text(&after[0].2), "<13>after");
    stop(run).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed() {
    let mut cfg = local(Mode::Tcp);
    cfg.max_connections = 1;
    let mut run = start(cfg, 16).await;
    let mut first = TcpStream::connect(run.addr).await.unwrap();
    first.write_all(b"<13>one\n").await.unwrap();
    records(&mut run.rx, 1).await;
    let mut second = TcpStream::connect(run.addr).await.unwrap();
    let mut b = [0u8; 8];
    let n = tokio::time::timeout(Duration::from_secs(10), second.read(&mut b))
        .await
        .expect("closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)));
    first.write_all(b"<13>two\n").await.unwrap();
    let got = records(&mut run.rx, 1).await;
    assert_eq!(text(&got[0].2), "<13>two");
    drop(first);
    stop(run).await;
}

mod tls_tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio_rustls::TlsConnector;

    struct Pki {
        dir: tempfile::TempDir,
        ca_der: CertificateDer<'static>,
        client: (CertificateDer<'static>, PrivateKeyDer<'static>),
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut sp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&server_key, &ca).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let mut cp = CertificateParams::new(vec!["client.example".to_string()]).unwrap();
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp.signed_by(&client_key, &ca).unwrap();
        std::fs::write(dir.path().join("server.crt"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            client: (
                client.der().clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
            ),
            dir,
        }
    }

    fn config(pki: &Pki, mutual: bool) -> SyslogConfig {
        let mut c = local(Mode::Tcp);
        c.tls = Some(TlsConfig {
            cert_file: pki.dir.path().join("server.crt"),
            key_file: pki.dir.path().join("server.key"),
            client_ca_file: mutual.then(|| pki.dir.path().join("ca.crt")),
        });
        c
    }

    fn connector(pki: &Pki, with_cert: bool) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let c = if with_cert {
            b.with_client_auth_cert(vec![pki.client.0.clone()], pki.client.1.clone_key())
                .unwrap()
        } else {
            b.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(c))
    }

    #[tokio::test]
    async fn tls_octet_counted_messages() {
        let pki = pki();
        let mut run = start(config(&pki, false), 16).await;
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let me = tcp.local_addr().unwrap();
        let mut tls = connector(&pki, false)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"25 <13>1 - host app - - - hi<13>lf framed too\n")
            .await
            .unwrap();
        tls.shutdown().await.unwrap();
        let got = records(&mut run.rx, 2).await;
        assert_eq!(text(&got[0].2), "<13>1 - host app - - - hi");
        assert_eq!(text(&got[1].2), "<13>lf framed too");
        assert_eq!(got[0].0.name, format!("syslog+tls://{me}"));
        stop(run).await;
    }

    #[tokio::test]
    async fn mutual_tls_rejects_a_client_without_certificate() {
        let pki = pki();
        let mut run = start(config(&pki, true), 16).await;
        // Without a certificate: the handshake fails (with TLS 1.3 the client
        // learns it at its first read) and nothing is received.
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        if let Ok(mut tls) = connector(&pki, false)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            let _ = tls.write_all(b"<13>should not arrive\n").await;
            let _ = tls.flush().await;
            let mut b = [0u8; 16];
            let r = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut b))
                .await
                .expect("the server closes the connection");
            assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        }
        // With one: accepted.
        let tcp = TcpStream::connect(run.addr).await.unwrap();
        let mut tls = connector(&pki, true)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        tls.write_all(b"<13>from a known client\n").await.unwrap();
        tls.shutdown().await.unwrap();
        let got = records(&mut run.rx, 1).await;
        assert_eq!(text(&got[0].2), "<13>from a known client");
        stop(run).await;
    }

    #[tokio::test]
    async fn bad_tls_files_are_a_clear_error() {
        let pki = pki();
        let mut c = config(&pki, false);
        c.tls.as_mut().unwrap().key_file = pki.dir.path().join("server.crt");
        let (tx, _rx) = mpsc::channel(1);
        let err = serve("s".into(), c, tx, CancellationToken::new(), None)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("no PEM private key"), "{msg}");
    }
}

/// `logger` from util-linux, the client a Linux host would use.
mod logger {
    use super::*;

    fn logger() -> Option<std::path::PathBuf> {
        let found = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("logger"))
                .find(|f| f.is_file())
        });
        if found.is_none() {
            println!("`logger` (util-linux) not installed; skipped");
        }
        found
    }

    async fn run_logger(args: &[&str]) {
        let status = tokio::process::Command::new("logger")
            .args(args)
            .status()
            .await
            .unwrap();
        assert!(status.success(), "logger {args:?}: {status}");
    }

    #[tokio::test]
    async fn logger_tcp_octet_counting_lf_and_udp() {
        if logger().is_none() {
            return;
        }
        let mut tcp = start(local(Mode::Tcp), 16).await;
        let port = tcp.addr.port().to_string();
        run_logger(&[
            "--tcp",
            "--octet-count",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "mlsoc",
            "hello octet counting",
        ])
        .await;
        run_logger(&[
            "--tcp",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "mlsoc",
            "hello lf framing",
        ])
        .await;
        let got = records(&mut tcp.rx, 2).await;
        let texts: Vec<String> = got.iter().map(|g| text(&g.2)).collect();
        assert!(
            texts[0].starts_with('<') && texts[0].ends_with("hello octet counting"),
            "{texts:?}"
        );
        assert!(
            texts[1].starts_with('<') && texts[1].ends_with("hello lf framing"),
            "{texts:?}"
        );
        assert!(texts.iter().all(|t| t.contains("mlsoc")));
        stop(tcp).await;

        let mut udp = start(local(Mode::Udp), 16).await;
        let port = udp.addr.port().to_string();
        run_logger(&[
            "--udp",
            "-n",
            "127.0.0.1",
            "-P",
            &port,
            "-t",
            "mlsoc",
            "hello udp",
        ])
        .await;
        let got = records(&mut udp.rx, 1).await;
        let t = text(&got[0].2);
        assert!(t.starts_with('<') && t.ends_with("hello udp"), "{t}");
        stop(udp).await;
    }
}

#[test]
fn config_from_toml_like_tables() {
    // As the binary reads it: `type` picks the source, the rest is ours.
    #[derive(serde::Deserialize, Debug)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Src {
        Syslog(SyslogConfig),
    }
    let s: Src = serde_json::from_str(
        r#"{"type":"syslog","mode":"tcp","address":"0.0.0.0:6514","tls":{"cert_file":"a.crt","key_file":"a.key","client_ca_file":"ca.crt"},"max_connections":10,"format":"syslog"}"#,
    )
    .unwrap();
    let Src::Syslog(c) = s;
    assert_eq!(c.mode, Mode::Tcp);
    assert_eq!(c.max_message_bytes, 64 * 1024);
    assert_eq!(c.max_connections, 10);
    assert_eq!(
        c.tls.unwrap().client_ca_file.as_deref(),
        Some(std::path::Path::new("ca.crt"))
    );
    let s: Src =
        serde_json::from_str(r#"{"type":"syslog","mode":"udp","address":"127.0.0.1:5514"}"#)
            .unwrap();
    let Src::Syslog(c) = s;
    assert_eq!(c.mode, Mode::Udp);
    assert!(
        serde_json::from_str::<Src>(
            r#"{"type":"syslog","mode":"udp","address":"127.0.0.1:5514","port":3}"#
        )
        .is_err(),
        "unknown fields are refused"
    );
}

#[tokio::test]
async fn tls_over_udp_is_refused() {
    let mut c = local(Mode::Udp);
    c.tls = Some(TlsConfig {
        cert_file: "a".into(),
        key_file: "b".into(),
        client_ca_file: None,
    });
    let (tx, _rx) = mpsc::channel(1);
    assert!(matches!(
        serve("s".into(), c, tx, CancellationToken::new(), None).await,
        Err(SyslogError::Config { .. })
    ));
}
