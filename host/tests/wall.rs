//! The wall page (README "The wall") in a real headless Chromium, driven over the DevTools
//! protocol: two streams published over RTMP by ffmpeg, every tile's picture decoded, names shown
//! as text (a tenant name full of markup stays text), a picture refreshed after the next capture,
//! the tenant filter and the storyboard link; a screenshot is written to `target/wall.png`.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use axum::http::StatusCode;
use common::{cut_slice_data, fixture, fixture_tags, temp_dir};
use futures::{SinkExt as _, StreamExt as _};
use livesnap::config::Config;
use livesnap::serve::Server;
use livesnap::serve::session::StreamSession;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;

const ADMIN: &str = "wall-admin-token-0123456789";
/// A tenant name a careless page would turn into markup.
const MARKUP_TENANT: &str = "News <b>bold</b> & \"Co\" <img src=x onerror=alert(1)>";

/// The Chromium binary: `$LIVESNAP_CHROMIUM`, else Debian's `chromium`.
fn chromium_binary() -> PathBuf {
    std::env::var_os("LIVESNAP_CHROMIUM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("chromium"), PathBuf::from)
}

/// A headless Chromium and a DevTools session on its first page.
struct Chromium {
    child: tokio::process::Child,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Chromium {
    async fn launch(profile: &Path) -> Chromium {
        let mut child = tokio::process::Command::new(chromium_binary())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1280,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "Chromium is needed for the wall test: apt-get install chromium (.ci/run does)",
            );
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let browser_ws = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("Chromium exited without a DevTools endpoint");
        })
        .await
        .expect("Chromium starts");
        // Keep draining its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = browser_ws
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .unwrap()
            .to_owned();
        assert!(host.starts_with("127.0.0.1:"), "{host}");
        let targets: Value = reqwest::get(format!("http://{host}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let (ws, _) =
            tokio_tungstenite::connect_async(page["webSocketDebuggerUrl"].as_str().unwrap())
                .await
                .unwrap();
        Chromium {
            child,
            ws,
            next_id: 0,
        }
    }

    /// One DevTools command; its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("DevTools answers")
                .expect("DevTools stays connected")
                .unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate `expr` in the page; its JSON value.
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }
}

/// What the page shows, read from its DOM.
const TILES_JS: &str = r#"[...document.querySelectorAll('#grid .tile')].map(t => {
  const img = t.querySelector('.pic img');
  const link = t.querySelector('[data-field=links] a');
  return {
    stream: t.dataset.stream,
    name: t.querySelector('.name').textContent,
    tenant: t.querySelector('[data-field=tenant]').textContent,
    codec: t.querySelector('[data-field=codec]').textContent,
    size: t.querySelector('[data-field=size]').textContent,
    counts: t.querySelector('[data-field=counts]').textContent,
    width: img ? img.naturalWidth : 0,
    etag: t.dataset.etag || '',
    refreshes: Number(t.dataset.refreshes),
    storyboard: link ? link.href : null,
    markup: t.querySelectorAll('b, img:not(.pic img), script').length,
    failing: t.classList.contains('failing') && !t.querySelector('.badge').hidden,
    badge: t.querySelector('.badge').textContent,
  };
})"#;

async fn tiles_until(
    chromium: &mut Chromium,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let tiles = chromium.eval(TILES_JS).await;
        let tiles = tiles.as_array().cloned().unwrap_or_default();
        if done(&tiles) {
            return tiles;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out waiting for {what}: {tiles:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn publish(file: &Path, url: &str) -> tokio::process::Child {
    tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-stream_loop",
            "2",
            "-i",
        ])
        .arg(file)
        .args(["-c", "copy", "-f", "flv", url])
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is needed for this test: apt-get install ffmpeg (.ci/run does)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_every_live_stream_in_chromium_and_refreshes_its_pictures() {
    let dir = temp_dir("wall");
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\n\
         [storage]\nroot = \"{root}\"\n[callbacks]\nspool_dir = \"{spool}\"\n\
         [[tenant]]\napp = \"news\"\nuniqname = {tenant}\npublish_key = \"k\"\nbucket = \"news\"\n\
         interval_s = 2\ncallback_secret = \"news-secret\"\nstoryboard = true\n\
         [[tenant]]\napp = \"games\"\nuniqname = \"games\"\npublish_key = \"k\"\nbucket = \"games\"\n\
         interval_s = 2\ncallback_secret = \"games-secret\"\n",
        root = dir.join("objects").display(),
        spool = dir.join("spool").display(),
        tenant = serde_json::to_string(MARKUP_TENANT).unwrap(),
    );
    let server = Server::bind(Config::parse(&text, "wall.toml").unwrap())
        .await
        .unwrap();
    let (rtmp, http, ctx) = (server.rtmp_addr(), server.http_addr(), server.ctx());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let get =
        |path: String| async move { reqwest::get(format!("http://{http}{path}")).await.unwrap() };

    // Only the admin token opens the wall and what it links to.
    assert_eq!(get("/wall".into()).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        get("/wall?token=nope".into()).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/wall.json?token=nope".into()).await.status(),
        StatusCode::FORBIDDEN
    );
    let page = get(format!("/wall?token={ADMIN}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    assert!(
        !page.text().await.unwrap().contains("://"),
        "no external assets"
    );

    // A third stream whose every I-frame is damaged: each capture fails, it gets the badge.
    // Its I-frames are 2 s apart: each is due at interval 2 s.
    let mut broken = StreamSession::start(&ctx, "games", "broken").unwrap();
    let mut damaged = 0;
    for tag in fixture_tags("baseline_360p.flv") {
        let body = if tag.tag_type == 9 && tag.body.starts_with(&[0x17, 1]) {
            damaged += 1;
            cut_slice_data(&tag.body)
        } else {
            tag.body.to_vec()
        };
        broken.push(tag.tag_type, tag.timestamp_ms, &body).unwrap();
    }

    let file = fixture("baseline_360p.flv");
    let mut news = publish(&file, &format!("rtmp://{rtmp}/news/cam1?key=k"));
    let mut games = publish(&file, &format!("rtmp://{rtmp}/games/arena?key=k"));
    let started = Instant::now();
    loop {
        let wall: Value = get(format!("/wall.json?token={ADMIN}"))
            .await
            .json()
            .await
            .unwrap();
        let streams = wall["streams"].as_array().unwrap();
        let stored = streams.iter().filter(|s| s["stored"].as_u64() >= Some(1));
        if streams.len() == 3 && stored.count() == 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{wall:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let profile = dir.join("chromium");
    let mut chromium = Chromium::launch(&profile).await;
    chromium
        .call(
            "Page.navigate",
            json!({"url": format!("http://{http}/wall?token={ADMIN}")}),
        )
        .await;
    let tiles = tiles_until(
        &mut chromium,
        "both pictures decoded",
        Duration::from_secs(20),
        |t| t.len() == 3 && t[..2].iter().all(|t| t["width"].as_u64() > Some(0)),
    )
    .await;
    // Sorted by tenant; names, sizes and codecs as text.
    assert_eq!(tiles[0]["stream"], "news/cam1", "{tiles:#?}");
    assert_eq!(tiles[0]["name"], "news/cam1");
    assert_eq!(tiles[0]["tenant"], MARKUP_TENANT);
    assert_eq!(tiles[1]["name"], "games/arena");
    assert_eq!(tiles[1]["tenant"], "games");
    assert_eq!(tiles[2]["name"], "games/broken");
    assert!(!tiles[0]["failing"].as_bool().unwrap(), "{tiles:#?}");
    assert!(!tiles[1]["failing"].as_bool().unwrap(), "{tiles:#?}");
    assert!(tiles[2]["failing"].as_bool().unwrap(), "{tiles:#?}");
    assert_eq!(tiles[2]["badge"], format!("failing ×{damaged}"));
    assert_eq!(tiles[2]["counts"], format!("0 / {damaged}"));
    assert_eq!(tiles[2]["width"], 0, "no picture for the broken stream");
    for t in &tiles[..2] {
        assert_eq!(t["width"], 640, "{t}");
        assert_eq!(t["size"], "640×360", "{t}");
        assert_eq!(t["codec"], "h264", "{t}");
        assert_eq!(t["markup"], 0, "a name became markup: {t}");
    }
    let injected = chromium
        .eval("document.querySelectorAll('b, script:not(:first-of-type)').length")
        .await;
    assert_eq!(injected, 0);

    // The next capture (2 s later) refreshes each picture through If-None-Match.
    let before: Vec<String> = tiles[..2]
        .iter()
        .map(|t| t["etag"].as_str().unwrap().to_owned())
        .collect();
    let tiles = tiles_until(
        &mut chromium,
        "a refreshed picture",
        Duration::from_secs(20),
        |t| {
            t.len() == 3
                && t[..2]
                    .iter()
                    .zip(&before)
                    .all(|(t, b)| t["etag"].as_str() != Some(b.as_str()) && t["width"] == 640)
        },
    )
    .await;
    assert!(
        tiles[..2]
            .iter()
            .all(|t| t["refreshes"].as_u64() >= Some(2)),
        "{tiles:#?}"
    );

    // The storyboard link of the tenant that has one is a sheet the server serves.
    let tiles = tiles_until(
        &mut chromium,
        "a storyboard link",
        Duration::from_secs(20),
        |t| t.len() == 3 && t[0]["storyboard"].is_string(),
    )
    .await;
    assert!(tiles[1]["storyboard"].is_null(), "{tiles:#?}");
    let sheet_url = tiles[0]["storyboard"].as_str().unwrap().to_owned();
    assert!(
        sheet_url.contains("/session/news/cam1/storyboard-1.jpg?token="),
        "{sheet_url}"
    );
    let sheet = reqwest::get(&sheet_url).await.unwrap();
    assert_eq!(sheet.status(), StatusCode::OK);
    assert_eq!(sheet.headers()["content-type"], "image/jpeg");
    let sheet = sheet.bytes().await.unwrap();
    let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(&sheet[..]));
    decoder.decode().unwrap();
    let (w, _) = decoder.dimensions().unwrap();
    assert!(w >= 160, "a sheet of 160 px tiles is {w} px wide");
    let forged = sheet_url.replace(ADMIN, "nope");
    assert_eq!(
        reqwest::get(&forged).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // The tenant filter.
    let shown = chromium
        .eval(
            "(() => { const s = document.getElementById('tenant'); s.value = 'games'; \
             s.dispatchEvent(new Event('change')); \
             return [...document.querySelectorAll('#grid .tile')].map(t => t.dataset.stream); })()",
        )
        .await;
    assert_eq!(shown, json!(["games/arena", "games/broken"]));
    chromium
        .eval(
            "(() => { const s = document.getElementById('tenant'); s.value = ''; \
             s.dispatchEvent(new Event('change')); return true; })()",
        )
        .await;

    // For humans: what the wall looked like.
    let shot = chromium
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wall.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("wall screenshot: {}", out.display());

    drop(broken);
    let _ = chromium.child.kill().await;
    let _ = news.kill().await;
    let _ = games.kill().await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_an_admin_token_there_is_no_wall() {
    let dir = temp_dir("nowall");
    let text = format!(
        "[server]\nrtmp = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n[storage]\nroot = \"{}\"\n\
         [callbacks]\nspool_dir = \"{}\"\n",
        dir.join("objects").display(),
        dir.join("spool").display(),
    );
    let server = Server::bind(Config::parse(&text, "nowall.toml").unwrap())
        .await
        .unwrap();
    let http = server.http_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for path in [
        "/wall",
        "/wall?token=",
        "/wall.json",
        "/session/a/b/index.json?token=",
    ] {
        let r = reqwest::get(format!("http://{http}{path}")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let short = "[server]\nadmin_token = \"short\"\n";
    let err = Config::parse(short, "short.toml").unwrap_err().to_string();
    assert!(
        err.contains("short.toml:2") && err.contains("admin_token"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
