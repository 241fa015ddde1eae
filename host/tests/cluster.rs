//! Cluster mode against a real 3-server NATS JetStream cluster on 127.0.0.1 (three
//! `nats-server` processes with routes) and two livesnap nodes, with real ffmpeg publishers:
//! one publisher per stream name across nodes, a killed node's callbacks delivered by the other,
//! a killed NATS server and a frozen JetStream losing nothing. Needs `nats-server` and ffmpeg
//! (`.ci/run` installs both).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use common::nats::{NatsCluster, free_ports};
use common::{
    Receiver, Reply, check_signature, fixture, fixture_tags, is_keyframe, jpeg_size,
    stream_and_seq, taskid, temp_dir,
};
use livesnap::config::Config;
use livesnap::serve::Server;
use livesnap::serve::session::{Refusal, ServeCtx, StreamSession};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "cluster-test-secret";
const LEASE_S: u64 = 3;

/// One cluster scenario at a time: each runs three NATS servers, nodes and ffmpeg on two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A node's config: shared object storage, its own spool, the test tenant.
fn node_config(
    dir: &Path,
    nats: &NatsCluster,
    node: &str,
    cb_url: &str,
    ports: (u16, u16),
) -> String {
    format!(
        "[server]\nrtmp = \"127.0.0.1:{rtmp}\"\nhttp = \"127.0.0.1:{http}\"\n\
         [storage]\nroot = \"{root}\"\n\
         [callbacks]\nspool_dir = \"{spool}\"\nbackoff_base_ms = 200\nbackoff_max_ms = 1000\n\
         [limits]\nrender_workers = 1\nmax_streams_per_tenant = 2\n\
         [cluster]\nnats = {list}\nnode = \"{node}\"\nlease_s = {LEASE_S}\npublish_timeout_ms = 1000\n\
         [[tenant]]\napp = \"live\"\nuniqname = \"acme\"\npublish_key = \"k\"\nbucket = \"shots\"\n\
         interval_s = 1\ncallback_url = \"{cb_url}\"\ncallback_secret = \"{SECRET}\"\n",
        rtmp = ports.0,
        http = ports.1,
        root = dir.join("objects").display(),
        spool = dir.join(format!("spool-{node}")).display(),
        list = nats.toml_list(),
    )
}

/// A node running in this process.
struct Node {
    ctx: Arc<ServeCtx>,
    rtmp: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Node {
    async fn start(text: &str) -> Node {
        let server = Server::bind(Config::parse(text, "node.toml").unwrap())
            .await
            .unwrap();
        let (ctx, rtmp) = (server.ctx(), server.rtmp_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Node {
            ctx,
            rtmp,
            stop: Some(stop),
            task,
        }
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.ctx.public_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A metric's value in a Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn ffmpeg(input: &str, realtime: bool, url: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("ffmpeg");
    cmd.args(["-nostdin", "-loglevel", "error"]);
    if realtime {
        // 10 s in real time: I-frames every 2 s, five captures at interval 1.
        cmd.args(["-re", "-t", "10"]);
    }
    cmd.arg("-i")
        .arg(fixture(input))
        .args(["-c", "copy", "-f", "flv", url])
        .kill_on_drop(true);
    cmd
}

/// Wait until `check` holds, polling; false at the deadline.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    check()
}

/// Distinct task ids accepted by the receiver, each with a valid signature.
fn accepted_taskids(receiver: &Receiver) -> BTreeSet<String> {
    receiver
        .accepted()
        .iter()
        .map(|req| {
            check_signature(SECRET, req);
            taskid(&req.body)
        })
        .collect()
}

/// Every stored picture under `root`, as object keys.
fn stored_keys(root: &Path) -> BTreeSet<String> {
    let shots = root.join("shots");
    common::files_under(&shots)
        .into_iter()
        .map(|p| {
            p.strip_prefix(&shots)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned()
        })
        .filter(|k| k.ends_with(".jpg"))
        .collect()
}

/// The keys named by the accepted callbacks.
fn called_back_keys(receiver: &Receiver) -> BTreeSet<String> {
    receiver
        .accepted()
        .iter()
        .map(|req| {
            let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
            v["keys"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// One scenario's world: a NATS cluster, a scripted receiver and a runtime for the nodes, torn
/// down in that order (then the directory), one scenario at a time.
struct Scenario {
    rt: tokio::runtime::Runtime,
    nats: NatsCluster,
    receiver: Receiver,
    dir: Cleanup,
    _one: std::sync::MutexGuard<'static, ()>,
}

/// Removes a test directory when dropped.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Scenario {
    fn new(
        tag: &str,
        script: impl Fn(&common::Request, u32) -> Reply + Send + Sync + 'static,
    ) -> Scenario {
        let one = serial();
        let dir = temp_dir(tag);
        Scenario {
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            nats: NatsCluster::start(&dir.join("nats")),
            receiver: Receiver::start(script),
            dir: Cleanup(dir),
            _one: one,
        }
    }
}

#[test]
fn a_stream_live_on_one_node_is_refused_on_another_until_it_stops() {
    let mut world = Scenario::new("cluster-registry", |_, _| Reply::Status(200));
    let Scenario {
        rt,
        nats,
        receiver,
        dir,
        ..
    } = &mut world;
    let dir = &dir.0;
    rt.block_on(async {
        // A registry bucket left by the first cluster version, whose entries expired after
        // lease_s: the nodes update it to keep entries (they live by their node's lease now).
        let client = async_nats::connect(nats.urls()[0].as_str()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let old = async_nats::jetstream::stream::Config {
            name: "KV_livesnap_live".into(),
            subjects: vec!["$KV.livesnap_live.>".into()],
            max_messages_per_subject: 1,
            max_age: Duration::from_secs(LEASE_S),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: 3,
            ..Default::default()
        };
        js.create_stream(old).await.unwrap();
        let p = free_ports(4);
        let a = Node::start(&node_config(dir, nats, "a", &receiver.url, (p[0], p[1]))).await;
        let b = Node::start(&node_config(dir, nats, "b", &receiver.url, (p[2], p[3]))).await;
        let mut bucket = js.get_stream("KV_livesnap_live").await.unwrap();
        assert_eq!(bucket.info().await.unwrap().config.max_age, Duration::ZERO);

        // A real publisher on node A, 10 s in real time.
        let mut on_a = ffmpeg(
            "baseline_360p.flv",
            true,
            &format!("rtmp://{}/live/cam?key=k", a.rtmp),
        )
        .spawn()
        .expect("ffmpeg is needed: apt-get install ffmpeg (.ci/run does)");
        assert!(
            eventually(Duration::from_secs(20), || a
                .ctx
                .live
                .lock()
                .unwrap()
                .contains_key("live/cam"))
            .await,
            "the publish on node A went live"
        );
        // The same name on node B: refused, by a real publisher and through the session API.
        let on_b = ffmpeg(
            "baseline_360p.flv",
            false,
            &format!("rtmp://{}/live/cam?key=k", b.rtmp),
        )
        .status()
        .await
        .unwrap();
        assert!(
            !on_b.success(),
            "node B must refuse a stream live on node A"
        );
        let refused = StreamSession::open(&b.ctx, "live", "cam")
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, Refusal::AlreadyLive(_)), "{refused}");
        assert_eq!(refused.to_string(), "stream live/cam is already live");
        assert_eq!(
            metric(&b.metrics().await, "livesnap_publishes_refused_total"),
            1
        );
        assert!(!b.ctx.live.lock().unwrap().contains_key("live/cam"));

        // max_streams_per_tenant = 2 holds across the cluster: cam on A, one more on B, and
        // a third on either node is refused.
        let second = StreamSession::open(&b.ctx, "live", "second").await.unwrap();
        for node in [&a, &b] {
            let third = StreamSession::open(&node.ctx, "live", "third")
                .await
                .err()
                .unwrap();
            assert!(matches!(third, Refusal::TooMany(_)), "{third}");
        }
        drop(second);

        // Once A's publisher stops, B takes the name.
        on_a.kill().await.unwrap();
        let _ = on_a.wait().await;
        assert!(
            eventually(Duration::from_secs(10), || !a
                .ctx
                .live
                .lock()
                .unwrap()
                .contains_key("live/cam"))
            .await
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let session = loop {
            match StreamSession::open(&b.ctx, "live", "cam").await {
                Ok(session) => break session,
                Err(why) => {
                    assert!(
                        Instant::now() < deadline,
                        "B still refuses after A stopped: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        drop(session);
        // And a real publisher on B now goes through, with its captures reported.
        let before = receiver.accepted().len();
        let status = ffmpeg(
            "baseline_360p.flv",
            false,
            &format!("rtmp://{}/live/cam?key=k", b.rtmp),
        )
        .status()
        .await
        .unwrap();
        assert!(status.success());
        assert!(
            eventually(Duration::from_secs(30), || receiver.accepted().len()
                >= before + 5)
            .await,
            "the publish on node B was captured"
        );
        // A node that dies with a stream live: its entry stays in the bucket, but once the
        // node's lease is gone the name is free on the other node.
        let ghost = StreamSession::open(&a.ctx, "live", "ghost").await.unwrap();
        assert!(matches!(
            StreamSession::open(&b.ctx, "live", "ghost")
                .await
                .err()
                .unwrap(),
            Refusal::AlreadyLive(_)
        ));
        std::mem::forget(ghost); // never unregistered, as with a kill -9
        a.shutdown().await;
        let died = Instant::now();
        let deadline = died + Duration::from_secs(LEASE_S + 5);
        let taken = loop {
            match StreamSession::open(&b.ctx, "live", "ghost").await {
                Ok(session) => break session,
                Err(why) => {
                    assert!(
                        Instant::now() < deadline,
                        "the dead node's stream is still live: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        eprintln!(
            "a dead node's live stream was free {:?} after its last lease",
            died.elapsed()
        );
        drop(taken);
        b.shutdown().await;
    });
}

#[test]
fn a_late_render_on_one_node_never_overwrites_the_next_sessions_picture_on_another() {
    let mut world = Scenario::new("cluster-overwrite", |_, _| Reply::Status(200));
    let Scenario {
        rt,
        nats,
        receiver,
        dir,
        ..
    } = &mut world;
    let dir = &dir.0;
    rt.block_on(async {
        let p = free_ports(4);
        let overwrite =
            |text: String| text.replace("interval_s = 1\n", "interval_s = 1\noverwrite = true\n");
        let a = Node::start(&overwrite(node_config(
            dir,
            nats,
            "a",
            &receiver.url,
            (p[0], p[1]),
        )))
        .await;
        let b = Node::start(&overwrite(node_config(
            dir,
            nats,
            "b",
            &receiver.url,
            (p[2], p[3]),
        )))
        .await;
        // Session 1 on node A queues every I-frame of the 1080p clip on A's one render worker
        // and ends; the publisher reconnects to node B at once with a 360p stream.
        let mut old = StreamSession::open(&a.ctx, "live", "cam").await.unwrap();
        // The clip three times over (about 60 renders, seconds of backlog on one worker), so
        // renders of A are still finishing when B's picture and callback are through.
        let tags = fixture_tags("high_1080p.flv");
        let clip_ms = tags.last().unwrap().timestamp_ms + 100;
        for round in 0..3u32 {
            for tag in tags.iter().filter(|t| round == 0 || t.tag_type != 18) {
                old.push(tag.tag_type, tag.timestamp_ms + round * clip_ms, &tag.body)
                    .unwrap();
            }
        }
        drop(old);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut new = loop {
            match StreamSession::open(&b.ctx, "live", "cam").await {
                Ok(session) => break session,
                Err(why) => {
                    assert!(Instant::now() < deadline, "B refuses the reconnect: {why}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let small = fixture_tags("baseline_360p.flv");
        let end = small.iter().position(is_keyframe).unwrap();
        for tag in &small[..=end] {
            new.push(tag.tag_type, tag.timestamp_ms, &tag.body).unwrap();
        }
        // Every callback of both sessions: settled for 2 s.
        let (mut seen, mut since) = (0, Instant::now());
        while seen == 0 || since.elapsed() < Duration::from_secs(2) {
            let now = receiver.accepted().len();
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sizes: Vec<(u64, u64)> = receiver
            .accepted()
            .iter()
            .map(|req| {
                let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                (
                    v["width"].as_u64().unwrap_or(0),
                    v["height"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let new_at = sizes
            .iter()
            .position(|s| *s == (640, 360))
            .expect("the new session's callback");
        assert!(
            sizes[new_at + 1..].contains(&(1920, 1080)),
            "no render of the old session finished after the new session's picture: {sizes:?}"
        );
        let keys = stored_keys(&dir.join("objects"));
        assert_eq!(keys.len(), 1, "one key in overwrite mode: {keys:?}");
        let jpeg = std::fs::read(dir.join("objects/shots").join(keys.first().unwrap())).unwrap();
        assert_eq!(
            jpeg_size(&jpeg),
            (640, 360),
            "the stored picture is the new session's ({sizes:?})"
        );
        drop(new);
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// A node as its own `livesnap serve` process, so it can be killed with SIGKILL.
struct NodeProcess {
    child: std::process::Child,
    rtmp: u16,
    http: u16,
}

impl NodeProcess {
    fn start(dir: &Path, text: &str, name: &str, ports: (u16, u16)) -> NodeProcess {
        let config: PathBuf = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_livesnap"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let node = NodeProcess {
            child,
            rtmp: ports.0,
            http: ports.1,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", node.http)).is_err() {
            assert!(Instant::now() < deadline, "node {name} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        node
    }

    async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_killed_nodes_callbacks_are_delivered_by_another_node() {
    let mut world = Scenario::new("cluster-kill-node", |_, _| Reply::Status(503));
    let Scenario {
        rt,
        nats,
        receiver,
        dir,
        ..
    } = &mut world;
    let dir = &dir.0;
    rt.block_on(async {
        let p = free_ports(4);
        let mut a = NodeProcess::start(
            dir,
            &node_config(dir, nats, "a", &receiver.url, (p[0], p[1])),
            "a",
            (p[0], p[1]),
        );
        let b = Node::start(&node_config(dir, nats, "b", &receiver.url, (p[2], p[3]))).await;

        // Receiver down; a publisher sends every keyframe of the 1080p clip into node A.
        let status = ffmpeg(
            "high_1080p.flv",
            false,
            &format!("rtmp://127.0.0.1:{}/live/cam?key=k", a.rtmp),
        )
        .status()
        .await
        .unwrap();
        assert!(status.success());
        let root = dir.join("objects");
        // Settled: the same number of pictures for 2 s.
        let (mut stored, mut same_since) = (0, Instant::now());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = stored_keys(&root).len();
            if now != stored {
                (stored, same_since) = (now, Instant::now());
            } else if now > 0 && same_since.elapsed() > Duration::from_secs(2) {
                break;
            }
            assert!(Instant::now() < deadline, "pictures never settled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Every capture stored and its callback in JetStream (A holds it, retrying).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let m = a.metrics().await;
            let ok = metric(&m, "livesnap_captures_total{code=\"OK\"}");
            if ok as usize == stored_keys(&root).len()
                && metric(&m, "livesnap_cluster_fallback_spool_depth") == 0
            {
                break;
            }
            assert!(Instant::now() < deadline, "captures not all stored: {m}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let keys = stored_keys(&root);
        assert!(keys.len() >= 10, "{keys:?}");
        assert!(receiver.accepted().is_empty());

        a.kill9();
        let killed = Instant::now();
        receiver.set_script(|_, _| Reply::Status(200));
        let all = eventually(Duration::from_secs(LEASE_S + 12), || {
            called_back_keys(receiver) == keys
        })
        .await;
        let took = killed.elapsed();
        assert!(
            all,
            "callbacks missing after node A died: {:?}",
            keys.difference(&called_back_keys(receiver))
                .collect::<Vec<_>>()
        );
        eprintln!(
            "all {} callbacks of the killed node arrived {took:?} after the kill",
            keys.len()
        );
        let taskids = accepted_taskids(receiver);
        let seqs: BTreeSet<u32> = taskids.iter().map(|t| stream_and_seq(t).1).collect();
        assert_eq!(seqs, (1..=keys.len() as u32).collect(), "no taskid missing");
        let m = b.metrics().await;
        assert_eq!(
            metric(&m, "livesnap_cluster_lease_takeovers_total"),
            1,
            "{m}"
        );
        b.shutdown().await;
    });
}

#[test]
fn a_killed_nats_server_loses_no_callback() {
    // Down for the first tries of every callback, so deliveries are in progress at the kill.
    let mut world = Scenario::new("cluster-kill-nats", |_, attempt| {
        if attempt < 3 {
            Reply::Status(503)
        } else {
            Reply::Status(200)
        }
    });
    let Scenario {
        rt,
        nats,
        receiver,
        dir,
        ..
    } = &mut world;
    let dir = &dir.0;
    rt.block_on(async {
        let p = free_ports(4);
        // Node A knows only server n0, the one killed below: it must fail over to the servers
        // it learnt from n0 (cluster INFO), so the kill hits a live client connection.
        let only_n0 = node_config(dir, nats, "a", &receiver.url, (p[0], p[1]))
            .replace(&nats.toml_list(), &format!("[\"{}\"]", nats.urls()[0]));
        assert!(only_n0.contains(&format!("nats = [\"{}\"]", nats.urls()[0])));
        let a = Node::start(&only_n0).await;
        let b = Node::start(&node_config(dir, nats, "b", &receiver.url, (p[2], p[3]))).await;
        // Two publishers in real time, one per node.
        let mut on_a = ffmpeg(
            "baseline_360p.flv",
            true,
            &format!("rtmp://{}/live/one?key=k", a.rtmp),
        )
        .spawn()
        .unwrap();
        let mut on_b = ffmpeg(
            "baseline_360p.flv",
            true,
            &format!("rtmp://{}/live/two?key=k", b.rtmp),
        )
        .spawn()
        .unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        nats.kill(0);
        assert!(on_a.wait().await.unwrap().success());
        assert!(on_b.wait().await.unwrap().success());
        let root = dir.join("objects");
        let keys_settled =
            eventually(Duration::from_secs(20), || stored_keys(&root).len() == 10).await;
        assert!(keys_settled, "{:?}", stored_keys(&root));
        let keys = stored_keys(&root);
        let all = eventually(Duration::from_secs(60), || {
            called_back_keys(receiver) == keys
        })
        .await;
        assert!(
            all,
            "callbacks lost after a NATS server died: {:?}",
            keys.difference(&called_back_keys(receiver))
                .collect::<Vec<_>>()
        );
        let taskids = accepted_taskids(receiver);
        assert_eq!(taskids.len(), 10, "{taskids:?}");
        a.shutdown().await;
        b.shutdown().await;
    });
}

#[test]
fn callbacks_fall_back_to_the_local_spool_while_jetstream_is_unreachable() {
    let mut world = Scenario::new("cluster-freeze", |_, _| Reply::Status(200));
    let Scenario {
        rt,
        nats,
        receiver,
        dir,
        ..
    } = &mut world;
    let dir = &dir.0;
    rt.block_on(async {
        let p = free_ports(2);
        let a = Node::start(&node_config(dir, nats, "a", &receiver.url, (p[0], p[1]))).await;
        let mut publisher = ffmpeg(
            "baseline_360p.flv",
            true,
            &format!("rtmp://{}/live/cam?key=k", a.rtmp),
        )
        .spawn()
        .unwrap();
        assert!(eventually(Duration::from_secs(20), || !receiver.accepted().is_empty()).await);
        // JetStream frozen (SIGSTOP: connections open, no answers) for 5 s mid-publish.
        nats.freeze(true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let frozen = a.metrics().await;
        nats.freeze(false);
        assert!(publisher.wait().await.unwrap().success());
        assert!(
            metric(&frozen, "livesnap_cluster_fallbacks_total") >= 1,
            "captures while JetStream was away went to the local spool: {frozen}"
        );
        assert!(
            metric(&frozen, "livesnap_cluster_fallback_spool_depth") >= 1,
            "{frozen}"
        );
        let root = dir.join("objects");
        let all = eventually(Duration::from_secs(60), || {
            let keys = stored_keys(&root);
            keys.len() == 5 && called_back_keys(receiver) == keys
        })
        .await;
        assert!(
            all,
            "stored {:?}, called back {:?}",
            stored_keys(&root),
            called_back_keys(receiver)
        );
        let taskids = accepted_taskids(receiver);
        let seqs: Vec<u32> = taskids.iter().map(|t| stream_and_seq(t).1).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        // Order per stream: the callbacks were accepted in seq order.
        let order: Vec<u32> = receiver
            .accepted()
            .iter()
            .map(|r| stream_and_seq(&taskid(&r.body)).1)
            .fold(Vec::new(), |mut seen, s| {
                if !seen.contains(&s) {
                    seen.push(s);
                }
                seen
            });
        assert_eq!(
            order,
            [1, 2, 3, 4, 5],
            "per-stream order kept through the fallback"
        );
        let after = a.metrics().await;
        assert_eq!(
            metric(&after, "livesnap_cluster_fallback_spool_depth"),
            0,
            "{after}"
        );
        a.shutdown().await;
    });
}
