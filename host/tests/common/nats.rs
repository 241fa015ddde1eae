//! A real 3-server NATS JetStream cluster on 127.0.0.1 (`nats-server` processes with routes),
//! for the cluster tests. `.ci/run` installs `nats-server`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Free loopback ports (bound then released; the servers take them right after).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub struct NatsCluster {
    dir: PathBuf,
    client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    servers: Vec<Option<Child>>,
}

impl NatsCluster {
    /// Start three servers under `dir` and wait until JetStream answers on each.
    pub fn start(dir: &Path) -> NatsCluster {
        let ports = free_ports(6);
        let mut cluster = NatsCluster {
            dir: dir.to_owned(),
            client_ports: ports[..3].to_vec(),
            route_ports: ports[3..].to_vec(),
            servers: vec![None, None, None],
        };
        for i in 0..3 {
            cluster.spawn(i);
        }
        for i in 0..3 {
            cluster.wait_ready(i);
        }
        cluster.wait_for_placement();
        cluster
    }

    /// Client URLs of all three servers.
    pub fn urls(&self) -> Vec<String> {
        self.client_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect()
    }

    /// `[cluster] nats = [...]` as TOML.
    pub fn toml_list(&self) -> String {
        let urls: Vec<String> = self.urls().iter().map(|u| format!("\"{u}\"")).collect();
        format!("[{}]", urls.join(", "))
    }

    fn spawn(&mut self, i: usize) {
        let store = self.dir.join(format!("n{i}"));
        std::fs::create_dir_all(&store).unwrap();
        let routes: Vec<String> = self
            .route_ports
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let conf = format!(
            "listen: \"127.0.0.1:{client}\"\nserver_name: \"n{i}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n}}\n\
             cluster {{\n  name: \"livesnap-test\"\n  listen: \"127.0.0.1:{route}\"\n  routes: [{routes}]\n}}\n",
            client = self.client_ports[i],
            route = self.route_ports[i],
            store = store.display(),
            routes = routes.join(", "),
        );
        let conf_path = self.dir.join(format!("n{i}.conf"));
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("n{i}.log")))
            .unwrap();
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&conf_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("nats-server is needed: apt-get install nats-server (.ci/run does)");
        self.servers[i] = Some(child);
    }

    /// Wait until server `i` accepts clients (its INFO line arrives).
    fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.client_ports[i])) {
                use std::io::Read;
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"INFO" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nats-server n{i} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the cluster places a three-replica stream: a meta leader is elected and
    /// every peer is current (a leader alone answers "no suitable peers for placement").
    fn wait_for_placement(&self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = self.urls()[0].clone();
        rt.block_on(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut last = String::new();
            while tokio::time::Instant::now() < deadline {
                match Self::probe_r3(&url).await {
                    Ok(()) => return,
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("the NATS cluster cannot place a 3-replica stream: {last}");
        });
    }

    async fn probe_r3(url: &str) -> Result<(), String> {
        let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
        let mut js = async_nats::jetstream::new(client);
        js.set_timeout(Duration::from_secs(5));
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "READY_PROBE".into(),
            subjects: vec!["livesnap-test.ready".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        js.delete_stream("READY_PROBE")
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// `kill -9` server `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.servers[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start server `i` again (same ports, same store).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_ready(i);
    }

    /// Freeze (SIGSTOP) or thaw (SIGCONT) every server: JetStream is unreachable while frozen,
    /// though connections stay open (the hardest case for a client: no error, no answer).
    pub fn freeze(&self, frozen: bool) {
        for child in self.servers.iter().flatten() {
            let status = Command::new("kill")
                .arg(if frozen { "-STOP" } else { "-CONT" })
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.freeze(false);
        for i in 0..3 {
            self.kill(i);
        }
    }
}
