//! Issue 18, item 2: a street map. A tile server the test starts (port 0, generated PNG tiles:
//! a street grid) is named in the console's configuration; the console and the public map
//! request tiles from it and draw the markers on top; when it is down the grid shows.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use centinela_testkit::browser::{self, Browser};

use crate::i18n::sign_in;
use crate::{ANA, DEADLINE, Harness, artifacts_dir, card, js, no_page_problems, operators};

/// Every tile of the map's current view has loaded and is decoded, and a frame was drawn since
/// (for a screenshot without holes).
const ALL_TILES_LOADED: &str = "window.centinelaMap.tilesIdle
    && Promise.all([...document.querySelectorAll('#map img.leaflet-tile')].map((img) => img.decode()))
        .then(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true)))))";

/// Side of a tile in pixels (what Leaflet asks for by default).
const TILE_PX: usize = 256;

/// A raster tile server on 127.0.0.1, port 0: `/{z}/{x}/{y}.png`.
pub(crate) struct TileServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TileServer {
    pub(crate) async fn start() -> TileServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route("/{z}/{x}/{file}", axum::routing::get(tile))
            .with_state(requests.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        TileServer {
            addr,
            requests,
            stop,
            task,
        }
    }

    pub(crate) fn template(&self) -> String {
        format!("http://{}/{{z}}/{{x}}/{{y}}.png", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops listening and closes every connection (idle keep-alive ones too).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

async fn tile(
    State(requests): State<Arc<AtomicUsize>>,
    Path((z, x, file)): Path<(u32, u32, String)>,
) -> impl IntoResponse {
    requests.fetch_add(1, Ordering::SeqCst);
    let y: u32 = file.trim_end_matches(".png").parse().unwrap_or(0);
    (
        [(header::CONTENT_TYPE, "image/png")],
        street_tile(z.wrapping_add(x).wrapping_add(y)),
    )
}

/// A tile that reads as streets: pale blocks, white streets every 64 px, a darker avenue
/// every 128 px (shifted by `seed` so tiles differ).
fn street_tile(seed: u32) -> Vec<u8> {
    let mut rows = Vec::with_capacity(TILE_PX * (1 + TILE_PX * 3));
    for y in 0..TILE_PX {
        rows.push(0); // filter: none
        for x in 0..TILE_PX {
            let shifted = (x + seed as usize * 7) % TILE_PX;
            let street = shifted % 64 < 7 || y % 64 < 7;
            let avenue = shifted % 128 < 10 || y % 128 < 10;
            let rgb = if avenue {
                [0xf6, 0xd8, 0x8e]
            } else if street {
                [0xff, 0xff, 0xff]
            } else {
                [0xe8, 0xe4, 0xd8]
            };
            rows.extend_from_slice(&rgb);
        }
    }
    png_rgb(TILE_PX as u32, TILE_PX as u32, &rows)
}

/// A PNG of filtered RGB rows, deflated with stored blocks (no compression needed).
fn png_rgb(width: u32, height: u32, rows: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = rows.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in rows {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32_is_the_png_one() {
    assert_eq!(crc32(b"IEND"), 0xae42_6082);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_map_draws_street_tiles_and_falls_back_to_the_grid() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let tiles = TileServer::start().await;
    let console = operators()
        .with_map_tiles(&tiles.template(), Some("© Teselas de prueba"))
        .unwrap();
    let mut harness = Harness::start(console, true).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, ANA).await;

    // Streets from the tile server, credited, with every button and brigade on them.
    page.wait_for(
        "tiles drawn",
        "window.centinelaMap.kind === 'street' && window.centinelaMap.tilesLoaded > 0",
        DEADLINE,
    )
    .await;
    assert!(tiles.requests() > 0, "the tile server was asked for tiles");
    page.wait_for(
        "the buttons and brigades on the street map",
        "document.querySelectorAll('#map .lf-button').length === 15 && document.querySelectorAll('#map .lf-unit').length === 12",
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the attribution",
        "document.querySelector('#map .leaflet-control-attribution')?.textContent.includes('Teselas de prueba')",
        DEADLINE,
    )
    .await;

    // A press: its incident on the map, the brigade sent to it with its route line; a click on
    // the button's marker selects the incident.
    let (incident, _) = harness.press("B01").await;
    page.wait_for(
        "the incident on the map",
        &format!(
            "document.querySelector('#map .lf-incident[data-incident=' + JSON.stringify({}) + ']')",
            js(&incident)
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the incident in the queue",
        &format!("document.querySelector({})", js(&card(&incident))),
        DEADLINE,
    )
    .await;
    page.click("#map .lf-button[data-button=\"B01\"]").await;
    page.wait_for(
        "the incident selected from the map",
        &format!(
            "document.querySelector('#d-head .incident-id')?.textContent === {}",
            js(&incident)
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the route line of the assigned brigade",
        "document.querySelectorAll('#map .lf-route').length > 0",
        DEADLINE,
    )
    .await;
    page.wait_for("every tile on screen loaded", ALL_TILES_LOADED, DEADLINE)
        .await;
    page.screenshot(&artifacts_dir().join("console-map.png"))
        .await;
    page.wait_for("every tile on screen loaded", ALL_TILES_LOADED, DEADLINE)
        .await;
    page.screenshot(&artifacts_dir().join("console-map.png"))
        .await;

    // The public map draws the same streets.
    let public = browser.new_page().await;
    public.call("Page.bringToFront", json!({})).await.unwrap();
    public.goto(&harness.url("/public/?lang=es")).await;
    public
        .wait_for(
            "the public street map",
            "window.centinelaMap.kind === 'street' && window.centinelaMap.tilesLoaded > 0 && document.querySelectorAll('#map .lf-button').length === 15",
            DEADLINE,
        )
        .await;
    public
        .screenshot(&artifacts_dir().join("public-map.png"))
        .await;
    // Headless Chromium may capture tiles decoded a moment ago before it has painted them; a
    // second capture after a drawn frame has them all.
    public
        .wait_for("every tile on screen loaded", ALL_TILES_LOADED, DEADLINE)
        .await;
    public
        .screenshot(&artifacts_dir().join("public-map.png"))
        .await;
    assert_eq!(
        public
            .eval("document.querySelectorAll('#map .lf-incident, #map .lf-unit').length")
            .await
            .unwrap(),
        json!(0),
        "the public map shows no incident or brigade"
    );

    // The tile server goes away: a console opened now draws the grid.
    tiles.stop().await;
    page.goto(&harness.url("/")).await;
    page.wait_for(
        "the grid instead of tiles",
        "window.centinelaMap.kind === 'grid' && window.centinelaMap.tileErrors > 0 && document.querySelectorAll('#map svg.map-svg .map-button').length === 15",
        DEADLINE,
    )
    .await;

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}

/// Issue 18, item 2, on the phone: the brigade app draws its assignment (the phone's position,
/// the incident, the route line between them) with the same map module on the same street
/// tiles, credited; with the tile server down, the plain view.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_brigade_app_draws_its_map_on_street_tiles_and_falls_back_to_the_grid() {
    use crate::brigade_app::{U01_TOKEN, as_phone, node_with_unit_tokens_and, unit};
    use centinela_proto::v1;

    let Some(chromium) = browser::chromium() else {
        return;
    };
    let tiles = TileServer::start().await;
    let console = centinela_console::Config::default()
        .with_map_tiles(&tiles.template(), Some("© Teselas de prueba"))
        .unwrap();
    let node = node_with_unit_tokens_and(console).await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    as_phone(&browser, &page, &node).await;

    page.goto(&node.http_url("/brigada/")).await;
    page.type_into("#token", U01_TOKEN).await;
    page.click("#signin-button").await;
    centinela_testkit::wait::until("U01 at the phone's position, available", || async {
        let u = unit(&node, "U01").await;
        (u.status == v1::UnitStatus::Available as i32 && u.position.is_some()).then_some(())
    })
    .await;
    let incident = node.press("B01", "brigade-map-1").await.incident_id;
    // Acknowledged, so the assignment stays while the test looks at it.
    page.wait_for(
        "the assignment to acknowledge",
        "!document.getElementById('do-ack').disabled",
        DEADLINE,
    )
    .await;
    page.click("#do-ack").await;
    centinela_testkit::wait::until("U01 acknowledged", || async {
        unit(&node, "U01").await.acked.then_some(())
    })
    .await;

    // Streets from the tile server, credited, with the unit, its incident and the route line.
    page.wait_for(
        "the assignment on street tiles",
        "window.centinelaMap.kind === 'street' && window.centinelaMap.tilesLoaded > 0",
        DEADLINE,
    )
    .await;
    assert!(tiles.requests() > 0, "the tile server was asked for tiles");
    page.wait_for(
        "the unit, the incident and the route line on the map",
        &format!(
            "document.querySelector('#a-map .lf-unit') && document.querySelector('#a-map .lf-route') \
             && document.querySelector('#a-map .lf-incident')?.dataset.incident === {}",
            js(&incident)
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the attribution",
        "document.querySelector('#a-map .leaflet-control-attribution')?.textContent.includes('Teselas de prueba')",
        DEADLINE,
    )
    .await;
    let tiles_in_app = ALL_TILES_LOADED.replace("#map img", "#a-map img");
    page.wait_for("every tile on screen loaded", &tiles_in_app, DEADLINE)
        .await;
    page.screenshot(&artifacts_dir().join("brigade-map.png"))
        .await;

    // The tile server goes away: the app opened again draws the plain view, same markers.
    tiles.stop().await;
    page.goto(&node.http_url("/brigada/")).await;
    page.wait_for(
        "the plain view instead of tiles",
        "window.centinelaMap.kind === 'grid' && window.centinelaMap.tileErrors > 0 \
         && document.querySelector('#a-map svg.map-svg .map-incident') \
         && document.querySelector('#a-map svg.map-svg .map-unit')",
        DEADLINE,
    )
    .await;

    // Every word from the catalogues (none missing), Spanish from the phone's language; the
    // officer's switch to English renders the app again in English and is remembered.
    assert_eq!(
        page.eval("window.centinelaI18n.missing()").await.unwrap(),
        json!([])
    );
    assert_eq!(
        page.eval("document.getElementById('do-en-route').textContent")
            .await
            .unwrap(),
        json!("En camino")
    );
    page.click("#lang").await;
    page.wait_for(
        "the app in English",
        "document.documentElement.lang === 'en' && document.getElementById('do-en-route')?.textContent === 'En route' \
         && document.getElementById('unit-status').textContent === 'Assigned'",
        DEADLINE,
    )
    .await;
    page.goto(&node.http_url("/brigada/")).await;
    page.wait_for(
        "English remembered",
        "document.documentElement.lang === 'en' && window.centinelaI18n?.missing().length === 0",
        DEADLINE,
    )
    .await;

    no_page_problems(&browser);
    browser.close().await;
    node.shutdown().await;
}
