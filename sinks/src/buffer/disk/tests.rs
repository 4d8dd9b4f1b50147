use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use schema::{Ack, AckStatus};
use tokio::sync::oneshot;

use super::*;
use crate::record::{Batch, Record, Stream};

fn rec(i: usize) -> Record {
    rec_sized(i, 0)
}

fn rec_sized(i: usize, pad: usize) -> Record {
    Record {
        stream: Stream::Events,
        doc: Bytes::from(format!(
            "{{\"n\":{i},\"message\":\"GET /api/2.0/mlflow/runs/get {}\"}}",
            "x".repeat(pad)
        )),
        dataset: "mlflow.access".into(),
        time_ns: Some(1_700_000_000_000_000_000 + i as i64),
        host: Some("mlflow-0".into()),
        source: "/var/log/mlflow/access.log".into(),
        id: format!("id-{i}").into(),
    }
}

fn batch(range: std::ops::Range<usize>) -> (Batch, oneshot::Receiver<AckStatus>) {
    let (tx, rx) = oneshot::channel();
    let ack = Ack::new(move |s| {
        let _ = tx.send(s);
    });
    (Batch::new(range.map(rec).collect(), ack), rx)
}

fn opts(max_size: u64) -> Options {
    Options {
        max_size,
        when_full: WhenFull::Block,
        fsync_interval: None,
    }
}

fn small_batches(n: usize) -> Tuning {
    Tuning {
        read_batch_records: n,
        ..Tuning::default()
    }
}

fn open_dir(dir: &Path, o: Options, t: Tuning) -> (Sender, Receiver) {
    open("t".into(), dir, o, t).expect("open the disk buffer")
}

async fn recv(rx: &mut Receiver) -> Batch {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a batch within 10 s")
        .expect("buffer not closed")
}

fn ids(b: &Batch) -> Vec<String> {
    b.records.iter().map(|r| r.id.to_string()).collect()
}

fn id_range(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("id-{i}")).collect()
}

/// Receives batches until `n` records came.
async fn recv_records(rx: &mut Receiver, n: usize) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut got = 0;
    while got < n {
        let b = recv(rx).await;
        got += b.len();
        out.push(b);
    }
    assert_eq!(got, n, "exactly {n} records");
    out
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().and_then(segment_id))
        .collect();
    v.sort_unstable();
    v
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn round_trip_in_order_and_acks_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), Tuning::default());
    let mut acks = Vec::new();
    for k in 0..3 {
        let (b, a) = batch(k * 100..(k + 1) * 100);
        tx.send(b).await.unwrap();
        acks.push(a);
    }
    for a in acks {
        assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    }
    drop(tx);
    let mut all = Vec::new();
    while let Some(b) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
    {
        all.extend(b.records.iter().cloned());
        b.complete(AckStatus::Delivered);
    }
    let want: Vec<Record> = (0..300).map(rec).collect();
    assert_eq!(all, want);
    assert_eq!(rx.shared.events.load(Ordering::Relaxed), 0);
    assert_eq!(rx.shared.bytes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn restart_resumes_from_the_acknowledged_position() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), small_batches(10));
        let (b, a) = batch(0..50);
        tx.send(b).await.unwrap();
        assert_eq!(a.await.unwrap(), AckStatus::Delivered);
        let b1 = recv(&mut rx).await;
        let b2 = recv(&mut rx).await;
        let b3 = recv(&mut rx).await;
        assert_eq!(ids(&b1), id_range(0..10));
        assert_eq!(ids(&b3), id_range(20..30));
        b1.complete(AckStatus::Delivered);
        b2.complete(AckStatus::Delivered);
        // b3 was read but the sink stopped before delivering it.
        drop(b3);
    }
    // `open` waits for the previous buffer's threads to let go.
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), small_batches(10));
    wait_until("the backlog counted", || {
        rx.shared.events.load(Ordering::Relaxed) == 30
    })
    .await;
    let batches = recv_records(&mut rx, 30).await;
    let got: Vec<String> = batches.iter().flat_map(ids).collect();
    assert_eq!(got, id_range(20..50), "read-but-unacked records come again");
    // New records go after the backlog.
    let (b, a) = batch(50..55);
    tx.send(b).await.unwrap();
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    let more = recv_records(&mut rx, 5).await;
    assert_eq!(
        more.iter().flat_map(ids).collect::<Vec<_>>(),
        id_range(50..55)
    );
    for b in batches.into_iter().chain(more) {
        b.complete(AckStatus::Delivered);
    }
    drop((tx, rx));
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), small_batches(10));
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap();
    assert!(rest.is_none(), "everything was acknowledged: {rest:?}");
}

#[tokio::test]
async fn out_of_order_acks_advance_over_the_contiguous_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), small_batches(10));
    let (b, a) = batch(0..40);
    tx.send(b).await.unwrap();
    a.await.unwrap();
    let start = rx.shared.lock().acked;
    let b1 = recv(&mut rx).await;
    let b2 = recv(&mut rx).await;
    let b3 = recv(&mut rx).await;
    b3.complete(AckStatus::Delivered);
    b2.complete(AckStatus::Delivered);
    assert_eq!(rx.shared.lock().acked, start, "b1 still open");
    assert_eq!(rx.shared.events.load(Ordering::Relaxed), 40);
    b1.complete(AckStatus::Delivered);
    let after = rx.shared.lock().acked;
    assert!(after > start);
    assert_eq!(rx.shared.events.load(Ordering::Relaxed), 10);
    drop((tx, rx));
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), small_batches(10));
    drop(tx);
    let rest = recv_records(&mut rx, 10).await;
    assert_eq!(ids(&rest[0]), id_range(30..40));
    let saved: ReaderFile =
        serde_json::from_slice(&fs::read(dir.path().join("reader.json")).unwrap()).unwrap();
    assert_eq!((saved.segment, saved.offset), (after.segment, after.offset));
}

#[tokio::test]
async fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = Tuning {
        segment_max: Some(4096),
        ..small_batches(50)
    };
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), tuning);
    for k in 0..20 {
        let (b, _a) = batch(k * 20..(k + 1) * 20);
        tx.send(b).await.unwrap();
    }
    let (b, a) = batch(400..401);
    tx.send(b).await.unwrap();
    a.await.unwrap();
    assert!(segments(dir.path()).len() > 5, "{:?}", segments(dir.path()));
    for b in recv_records(&mut rx, 401).await {
        b.complete(AckStatus::Delivered);
    }
    wait_until("acknowledged segments deleted", || {
        segments(dir.path()).len() <= 2
    })
    .await;
    assert_eq!(rx.shared.bytes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_full_buffer_blocks_until_the_sink_acknowledges() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = open_dir(dir.path(), opts(1 << 20), small_batches(10));
    let big = |k: usize| {
        let (tx, rx) = oneshot::channel();
        let ack = Ack::new(move |s| {
            let _ = tx.send(s);
        });
        (
            Batch::new(
                (k * 10..k * 10 + 10)
                    .map(|i| rec_sized(i, 10_000))
                    .collect(),
                ack,
            ),
            rx,
        )
    };
    // ~100 KB per batch: ten fit in 1 MiB, the eleventh does not.
    let mut k = 0;
    loop {
        let (b, _a) = big(k);
        k += 1;
        if tokio::time::timeout(Duration::from_millis(300), tx.send(b))
            .await
            .is_err()
        {
            break;
        }
        assert!(k < 20, "the cap never blocked");
    }
    assert_eq!(k, 11);
    let (b, a) = big(k);
    let blocked = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(b).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !blocked.is_finished(),
        "still full: reading does not free room"
    );
    let first = recv(&mut rx).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished(), "still full until acknowledged");
    first.complete(AckStatus::Delivered);
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .expect("room after an ack")
        .unwrap()
        .unwrap();
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
}

#[tokio::test]
async fn drop_newest_drops_and_acknowledges_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        when_full: WhenFull::DropNewest,
        ..opts(1 << 20)
    };
    let (tx, mut rx) = open_dir(dir.path(), o, small_batches(1000));
    let (b, _a) = {
        let (t, r) = oneshot::channel();
        let recs = (0..100).map(|i| rec_sized(i, 11_000)).collect();
        (
            Batch::new(
                recs,
                Ack::new(move |s| {
                    let _ = t.send(s);
                }),
            ),
            r,
        )
    };
    tx.send(b).await.unwrap();
    let (b, a) = batch(100..101);
    tokio::time::timeout(Duration::from_secs(1), tx.send(b))
        .await
        .expect("drop_newest never waits")
        .unwrap();
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    drop(tx);
    let got = recv_records(&mut rx, 100).await;
    assert!(got.iter().flat_map(ids).all(|id| id != "id-100"));
}

/// Offsets of the frames of a segment file.
fn frame_offsets(data: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut v = Vec::new();
    while at + frame::HEADER <= data.len() {
        v.push(at);
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        at += frame::HEADER + len;
    }
    v
}

#[tokio::test]
async fn damaged_frames_and_a_torn_tail_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (tx, rx) = open_dir(dir.path(), opts(64 << 20), Tuning::default());
        let (b, a) = batch(0..20);
        tx.send(b).await.unwrap();
        a.await.unwrap();
        drop((tx, rx));
    }
    // Wait for the threads to let go (reopening waits on the lock), then damage the file.
    drop(open_dir(dir.path(), opts(64 << 20), Tuning::default()));
    let seg = segments(dir.path())
        .into_iter()
        .find(|&id| fs::metadata(segment_path(dir.path(), id)).unwrap().len() > 0)
        .unwrap();
    let path = segment_path(dir.path(), seg);
    let mut data = fs::read(&path).unwrap();
    let offs = frame_offsets(&data);
    assert_eq!(offs.len(), 20);
    data[offs[5] + frame::HEADER + 7] ^= 0x40; // a flipped bit in record 5
    data[offs[10] + 4..offs[10] + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes()); // a wild length in record 10
    data.truncate(data.len() - 3); // a torn last frame (record 19)
    fs::write(&path, &data).unwrap();

    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), Tuning::default());
    let got = recv_records(&mut rx, 17).await;
    let want: Vec<String> = (0..19)
        .filter(|i| *i != 5 && *i != 10)
        .map(|i| format!("id-{i}"))
        .collect();
    assert_eq!(got.iter().flat_map(ids).collect::<Vec<_>>(), want);
    assert_eq!(rx.shared.corrupt.load(Ordering::Relaxed), 3);
    // The buffer goes on working.
    let (b, a) = batch(100..103);
    tx.send(b).await.unwrap();
    a.await.unwrap();
    let more = recv_records(&mut rx, 3).await;
    assert_eq!(ids(&more[0]), id_range(100..103));
    for b in got.into_iter().chain(more) {
        b.complete(AckStatus::Delivered);
    }
    wait_until("damaged bytes released", || {
        rx.shared.bytes.load(Ordering::Relaxed) == 0
    })
    .await;
}

#[tokio::test]
async fn garbage_segment_never_stalls_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path()).unwrap();
    // A segment of noise holding the marker bytes and wild lengths.
    let mut noise = Vec::new();
    let mut x: u32 = 12345;
    for i in 0..200_000u32 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        if i.is_multiple_of(997) {
            noise.extend_from_slice(&frame::MAGIC.to_le_bytes());
        }
        noise.push((x >> 16) as u8);
    }
    fs::write(segment_path(dir.path(), 1), &noise).unwrap();
    let (tx, mut rx) = open_dir(dir.path(), opts(64 << 20), Tuning::default());
    let (b, a) = batch(0..5);
    tx.send(b).await.unwrap();
    a.await.unwrap();
    let got = recv_records(&mut rx, 5).await;
    assert_eq!(ids(&got[0]), id_range(0..5));
    assert!(rx.shared.corrupt.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn sources_are_acknowledged_only_after_the_fsync() {
    let dir = tempfile::tempdir().unwrap();
    // Group commit.
    let (tx, _rx) = open_dir(
        dir.path().join("a").as_path(),
        opts(64 << 20),
        Tuning::default(),
    );
    for _ in 0..5 {
        let before = tx.shared.syncs.load(Ordering::Acquire);
        let shared = tx.shared.clone();
        let (t, r) = oneshot::channel();
        let ack = Ack::new(move |s| {
            let _ = t.send((s, shared.syncs.load(Ordering::Acquire)));
        });
        tx.send(Batch::new(vec![rec(1)], ack)).await.unwrap();
        let (status, at_ack) = r.await.unwrap();
        assert_eq!(status, AckStatus::Delivered);
        assert!(at_ack > before, "acknowledged before an fsync covered it");
    }
    // With an interval, the acknowledgement waits for the next fsync.
    let o = Options {
        fsync_interval: Some(Duration::from_millis(400)),
        ..opts(64 << 20)
    };
    let (tx, _rx) = open_dir(dir.path().join("b").as_path(), o, Tuning::default());
    let (b, mut a) = batch(0..3);
    let sent = Instant::now();
    tx.send(b).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(a.try_recv().is_err(), "not durable yet, not acknowledged");
    assert_eq!(tx.shared.syncs.load(Ordering::Acquire), 0);
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    assert!(sent.elapsed() >= Duration::from_millis(350));
    assert_eq!(tx.shared.syncs.load(Ordering::Acquire), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_keep_each_senders_order() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = open_dir(dir.path(), opts(4 << 20), small_batches(64));
    let mut tasks = Vec::new();
    for s in 0..4usize {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for k in 0..50usize {
                let base = s * 10_000 + k * 10;
                let (b, a) = batch(base..base + 10);
                tx.send(b).await.unwrap();
                acks.push(a);
            }
            for a in acks {
                assert_eq!(a.await.unwrap(), AckStatus::Delivered);
            }
        }));
    }
    drop(tx);
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(b) = rx.recv().await {
            ids.extend(b.records.iter().map(|r| r.id.to_string()));
            b.complete(AckStatus::Delivered);
        }
        ids
    });
    for t in tasks {
        t.await.unwrap();
    }
    let ids = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids.len(), 2000);
    for s in 0..4usize {
        let mine: Vec<usize> = ids
            .iter()
            .map(|i| i[3..].parse::<usize>().unwrap())
            .filter(|n| n / 10_000 == s)
            .collect();
        let want: Vec<usize> = (0..500).map(|i| s * 10_000 + i).collect();
        assert_eq!(mine, want, "sender {s} in order");
    }
}

#[test]
fn config_parses() {
    let c: crate::buffer::BufferConfig = serde_json::from_str(
        r#"{"type":"disk","max_size":"512 MiB","when_full":"block","fsync_interval":"500ms"}"#,
    )
    .unwrap();
    assert_eq!(
        c,
        crate::buffer::BufferConfig::Disk {
            max_size: bytesize::ByteSize::mib(512),
            when_full: WhenFull::Block,
            fsync_interval: Some(Duration::from_millis(500)),
        }
    );
    let c: crate::buffer::BufferConfig =
        serde_json::from_str(r#"{"type":"disk","max_size":268435456}"#).unwrap();
    assert!(matches!(
        c,
        crate::buffer::BufferConfig::Disk {
            fsync_interval: None,
            ..
        }
    ));
    assert!(
        serde_json::from_str::<crate::buffer::BufferConfig>(
            r#"{"type":"disk","max_size":"1 GiB","max_events":3}"#
        )
        .is_err()
    );
}

#[tokio::test]
async fn too_small_and_busy_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        open("t".into(), dir.path(), opts(1000), Tuning::default()),
        Err(BufferError::Invalid { .. })
    ));
    let _held = open_dir(dir.path(), opts(1 << 20), Tuning::default());
    let t = Tuning {
        lock_wait: Duration::from_millis(50),
        ..Tuning::default()
    };
    match open("t".into(), dir.path(), opts(1 << 20), t) {
        Err(BufferError::Io { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::WouldBlock)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("two buffers opened one directory"),
    }
}

/// Every record of a large run comes back; prints the figures
/// (`cargo test -p sinks disk::tests::throughput -- --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput() {
    let dir = tempfile::tempdir().unwrap();
    let n = 50_000usize;
    let per = 1000usize;
    let (tx, mut rx) = open_dir(dir.path(), opts(1 << 30), Tuning::default());
    let records: Vec<Record> = (0..n).map(|i| rec_sized(i, 200)).collect();
    let bytes: usize = records.iter().map(|r| r.doc.len()).sum();
    let start = Instant::now();
    let mut acks = Vec::new();
    for chunk in records.chunks(per) {
        let (t, r) = oneshot::channel();
        let ack = Ack::new(move |s| {
            let _ = t.send(s);
        });
        tx.send(Batch::new(chunk.to_vec(), ack)).await.unwrap();
        acks.push(r);
    }
    for a in acks {
        a.await.unwrap();
    }
    let w = start.elapsed();
    drop(tx);
    let start = Instant::now();
    let mut got = 0;
    while let Some(b) = rx.recv().await {
        got += b.len();
        b.complete(AckStatus::Delivered);
    }
    let r = start.elapsed();
    assert_eq!(got, n);
    println!(
        "disk buffer (debug build): {n} records, {} MB of documents; write+fsync {:.0} rec/s ({:.1} MB/s), read+ack {:.0} rec/s, syncs {}",
        bytes / 1_000_000,
        n as f64 / w.as_secs_f64(),
        bytes as f64 / w.as_secs_f64() / 1e6,
        n as f64 / r.as_secs_f64(),
        rx.shared.syncs.load(Ordering::Relaxed)
    );
    // For comparison: the cost of serde_json for the same records.
    let start = Instant::now();
    let mut buf = Vec::new();
    for r in &records {
        serde_json::to_writer(&mut buf, r).unwrap();
    }
    let ser = start.elapsed();
    let start = Instant::now();
    let mut fb = Vec::new();
    for r in &records {
        frame::encode(r, &mut fb).unwrap();
    }
    let bin = start.elapsed();
    println!(
        "encode {n} records: serde_json {:?} ({} bytes), binary frames {:?} ({} bytes)",
        ser,
        buf.len(),
        bin,
        fb.len()
    );
}

#[tokio::test]
async fn opened_through_the_buffer_config() {
    let dir = tempfile::tempdir().unwrap();
    let sink_dir = dir.path().join("sinks").join("es");
    let config = crate::buffer::BufferConfig::Disk {
        max_size: bytesize::ByteSize::mib(16),
        when_full: WhenFull::Block,
        fsync_interval: None,
    };
    let (tx, mut rx) = crate::buffer::open(&config, "es", &sink_dir).unwrap();
    let (b, a) = batch(0..3);
    tx.send(b).await.unwrap();
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), id_range(0..3));
    got.complete(AckStatus::Delivered);
    assert!(rx.try_recv().is_none());
    assert!(sink_dir.join("buffer.lock").exists());
}

/// A 3 MiB tmpfs, mounted for the test and unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    /// `None` when this process may not mount (not root, no tmpfs).
    fn mount() -> Option<SmallFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(dir))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// A full disk: the writer retries, nothing is lost. Mounts a 3 MiB tmpfs
/// (CI runs as root, as does this project's machine; `MLSOC_SMALL_FS=DIR`
/// names a small file system instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_waits_and_loses_nothing() {
    let mounted;
    let fs_dir = match std::env::var("MLSOC_SMALL_FS") {
        Ok(d) => PathBuf::from(d),
        Err(_) => match SmallFs::mount() {
            Some(m) => {
                mounted = m;
                mounted.0.path().to_path_buf()
            }
            None => {
                println!(
                    "cannot mount a small tmpfs (not root?) and MLSOC_SMALL_FS is not set: skipped"
                );
                return;
            }
        },
    };
    let dir = tempfile::tempdir_in(&fs_dir).unwrap();
    let tuning = Tuning {
        segment_max: Some(512 << 10),
        ..small_batches(10)
    };
    // The cap (16 MiB) is larger than the file system (3 MiB).
    let (tx, mut rx) = open_dir(dir.path(), opts(16 << 20), tuning);
    let n_batches = 60usize; // 6 MB of records
    let producer = tokio::spawn(async move {
        let mut acks = Vec::new();
        for k in 0..n_batches {
            let (t, r) = oneshot::channel();
            let ack = Ack::new(move |s| {
                let _ = t.send(s);
            });
            let recs = (k * 10..k * 10 + 10)
                .map(|i| rec_sized(i, 10_000))
                .collect();
            tx.send(Batch::new(recs, ack)).await.unwrap();
            acks.push(r);
        }
        let mut delivered = 0;
        for a in acks {
            if a.await.unwrap() == AckStatus::Delivered {
                delivered += 1;
            }
        }
        delivered
    });
    let mut got = Vec::new();
    // A slow sink: the disk fills before it catches up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while let Some(b) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("progress")
    {
        got.extend(ids(&b));
        b.complete(AckStatus::Delivered);
        if got.len() == n_batches * 10 {
            break;
        }
    }
    let delivered = producer.await.unwrap();
    let errors = rx.shared.write_errors.load(Ordering::Relaxed);
    println!("write errors: {errors}, source batches delivered: {delivered}");
    assert!(errors > 0, "the file system never filled up");
    assert_eq!(got, id_range(0..n_batches * 10), "nothing lost, in order");
    assert_eq!(delivered, n_batches);
}

#[tokio::test]
async fn a_batch_larger_than_the_buffer_passes_alone_and_room_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let max = 1u64 << 20;
    let (tx, mut rx) = open_dir(dir.path(), opts(max), small_batches(1000));
    let big: Vec<Record> = (0..200).map(|i| rec_sized(i, 10_000)).collect(); // ~2 MB
    let (t, a) = oneshot::channel();
    let ack = Ack::new(move |s| {
        let _ = t.send(s);
    });
    tokio::time::timeout(Duration::from_secs(10), tx.send(Batch::new(big, ack)))
        .await
        .expect("an empty buffer takes an oversized batch")
        .unwrap();
    assert_eq!(a.await.unwrap(), AckStatus::Delivered);
    let (b, _a) = batch(1000..1001);
    let blocked = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(b).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!blocked.is_finished());
    for b in recv_records(&mut rx, 200).await {
        b.complete(AckStatus::Delivered);
    }
    tokio::time::timeout(Duration::from_secs(10), blocked)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for b in recv_records(&mut rx, 1).await {
        b.complete(AckStatus::Delivered);
    }
    assert_eq!(rx.shared.room.available_permits() as u64, max);
    assert_eq!(rx.shared.lock().debt, 0);
}
