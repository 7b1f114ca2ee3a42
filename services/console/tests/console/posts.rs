//! Issue 19, item 6, on the console's map: where to post the brigades. A node whose archive (an
//! SQLite file) holds a known history — presses concentrated at two far buttons of the demo's
//! city, B13 and B14, and a few at B01 — computes posts from the page: the markers drawn on
//! the street map and on the grid are at the posts `Operator.PlanPosts` returns over gRPC (the
//! CLI's path), which are the known optimum, and the coverage before and after is shown; bad
//! input shows the node's reason, and a period without incidents says so.
//!
//! The known answer: with a 1-minute target by car (about 320 m in a straight line with Lima's
//! road factor) no button other than B13 covers B13, and none other than B14 covers B14 (their
//! nearest buttons are 0.5 km and 0.6 km away); the units are all more than 0.7 km from both,
//! and U01 is 0.1 km from B01. With 6 incidents at B13, 4 at B14 and 2 at B01 (all the same
//! day, so equal recency weights), two brigades cover most at {B13, B14}: 10 of 12 (83.3 %),
//! against 2 of 12 (16.7 %, B01's by U01) where the units are now.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use centinela_archive::{Archive, ArchivedIncident};
use centinela_core::geo::Position;
use centinela_core::ids::{ButtonId, CameraId, IncidentId, OperatorId};
use centinela_core::incident::{Actor, Incident, Resolution};
use centinela_core::seal::AuditKey;
use centinela_core::time::Timestamp;
use centinela_proto::v1;
use centinela_testkit::browser::{self, Browser, Page};
use centinela_testkit::node::NodeBuilder;

use crate::i18n::sign_in;
use crate::map::TileServer;
use crate::{ANA, DEADLINE, Harness, artifacts_dir, js, no_page_problems, operators};

/// The history: (button, incidents).
const HISTORY: &[(&str, usize)] = &[("B13", 6), ("B14", 4), ("B01", 2)];

/// The posts' centres and the buttons' anchors on the map, as the page draws them: each post
/// with the button it stands on. On the street map a button's label is anchored 7 px right and
/// down of its corner (map.js); on the grid both are centred on the point.
const DRAWN: &str = "(() => {
    const street = window.centinelaMap.kind === 'street';
    return [...document.querySelectorAll('#map [data-post]')].map((el) => {
      const post = el.getBoundingClientRect();
      const plan = window.centinelaPosts.plan.posts[Number(el.dataset.post) - 1];
      const button = document.querySelector(`#map [data-button=\"${plan.button}\"]`);
      const b = (street ? button : button.querySelector('rect')).getBoundingClientRect();
      const at = street ? [b.left + 7, b.top + 7] : [b.left + b.width / 2, b.top + b.height / 2];
      return { n: Number(el.dataset.post), lat: Number(el.dataset.lat), lon: Number(el.dataset.lon),
               button: plan.button,
               dx: Math.abs(post.left + post.width / 2 - at[0]), dy: Math.abs(post.top + post.height / 2 - at[1]) };
    });
  })()";

fn closed_incident(id: &str, button: &str, at: Timestamp) -> Incident {
    let op = OperatorId::new("op-1").unwrap();
    let mut incident = Incident::open(
        IncidentId::new(id).unwrap(),
        ButtonId::new(button).unwrap(),
        CameraId::new("C01").unwrap(),
        Position::new(-12.0464, -77.03).unwrap(),
        at,
    );
    incident
        .close(
            Resolution::Handled,
            Actor::Operator(op),
            at.saturating_add(Duration::from_secs(600)),
        )
        .unwrap();
    incident
}

/// An SQLite archive holding [`HISTORY`], two days old.
async fn archive_with_history(url: &str, now_ms: u64) {
    let at = Timestamp::from_millis(now_ms - 2 * 86_400_000);
    let key = AuditKey::from_secret(b"posts on the map");
    let archive = Archive::open(url).unwrap();
    let mut n = 0;
    for (button, count) in HISTORY {
        for _ in 0..*count {
            n += 1;
            let mut incident = closed_incident(&format!("p{n}"), button, at);
            incident.seal(None, &key);
            let entry = ArchivedIncident {
                incident,
                presses: Vec::new(),
                stills: Vec::new(),
                bookmarks: Vec::new(),
                district: None,
            };
            archive
                .archive(&entry, &[], &key, Timestamp::from_millis(now_ms))
                .await
                .unwrap();
        }
    }
    archive.close().await;
}

/// Fills the form with `brigades` and `minutes` as typed, and computes; the layer's state.
async fn compute(page: &Page<'_>, brigades: &str, minutes: &str) -> Value {
    page.eval(&format!(
        "(() => {{ const f = document.querySelector('#posts form');
            f.elements.brigades.value = {}; f.elements.minutes.value = {};
            window.centinelaPosts.state = 'asked'; return true; }})()",
        js(brigades),
        js(minutes)
    ))
    .await
    .unwrap();
    page.click("#posts button[name=compute]").await;
    page.wait_for(
        "the plan or its refusal",
        "['shown', 'error'].includes(window.centinelaPosts.state) && window.centinelaPosts.state",
        DEADLINE,
    )
    .await
}

/// The page shows the plan the service returns, its markers on the map at its posts.
async fn expect_plan_drawn(page: &Page<'_>, expected: &v1::PlanPostsReply) {
    let drawn = page
        .wait_for(
            "two posts drawn on the map",
            &format!("(() => {{ const d = {DRAWN}; return d.length === 2 && d; }})()"),
            DEADLINE,
        )
        .await;
    let drawn = drawn.as_array().unwrap();
    for (post, want) in drawn.iter().zip(&expected.posts) {
        assert_eq!(post["button"], json!(want.button), "{drawn:?}");
        assert_eq!(post["lat"], json!(want.lat), "{drawn:?}");
        assert_eq!(post["lon"], json!(want.lon), "{drawn:?}");
        // Drawn where its button is drawn (2 px: rounding of the icons' anchors).
        assert!(
            post["dx"].as_f64().unwrap() <= 2.0 && post["dy"].as_f64().unwrap() <= 2.0,
            "post {post} is not drawn at its button"
        );
    }
    let text = page
        .eval("document.querySelector('#posts .posts-result').textContent")
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(
        text.contains("16.7 %") && text.contains("83.3 %"),
        "coverage before and after shown: {text}"
    );
    assert!(text.contains("óptimo demostrado"), "{text}");
    assert!(text.contains("12 incidentes en 3 botones"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn posts_computed_from_the_page_are_drawn_at_the_planned_places_on_streets_and_grid() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    archive_with_history(&url, now_ms).await;

    let tiles = TileServer::start().await;
    let console = operators()
        .with_map_tiles(&tiles.template(), Some("© Teselas de prueba"))
        .unwrap();
    let node = NodeBuilder::new("node-console")
        .console(console)
        .archive(&url);
    let mut harness = Harness::start_node(node, false).await;

    // The answer over gRPC, as `centinela plan-posts --brigades 2 --target-minutes 1` gets it.
    let expected = harness
        .operator
        .plan_posts(v1::PlanPostsRequest {
            brigades: 2,
            target_minutes: 1.0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let buttons: Vec<&str> = expected.posts.iter().map(|p| p.button.as_str()).collect();
    assert_eq!(buttons, ["B13", "B14"], "the known optimum");
    assert!((expected.coverage_before - 2.0 / 12.0).abs() < 1e-9);
    assert!((expected.coverage_after - 10.0 / 12.0).abs() < 1e-9);
    assert!(expected.optimal);

    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;
    page.goto(&harness.url("/")).await;
    sign_in(&page, ANA).await;
    page.wait_for(
        "the street map with the buttons",
        "window.centinelaMap.kind === 'street' && document.querySelectorAll('#map .lf-button').length === 15",
        DEADLINE,
    )
    .await;

    // On the streets.
    assert_eq!(compute(&page, "2", "1").await, json!("shown"));
    expect_plan_drawn(&page, &expected).await;
    page.screenshot(&artifacts_dir().join("console-posts.png"))
        .await;

    // Cleared: no marker left.
    page.click("#posts button[name=clear]").await;
    page.wait_for(
        "the posts cleared",
        "!document.querySelector('#map [data-post]') && window.centinelaPosts.state === 'idle'",
        DEADLINE,
    )
    .await;

    // Bad input: the node's reason, and no markers.
    assert_eq!(compute(&page, "0", "1").await, json!("error"));
    let shown = page
        .eval("document.querySelector('#posts .posts-result').textContent")
        .await
        .unwrap();
    assert!(
        shown
            .as_str()
            .unwrap()
            .contains("brigades 0 is out of range: 1 to 1000"),
        "{shown}"
    );
    assert_eq!(compute(&page, "2", "abc").await, json!("error"));
    let shown = page
        .eval("document.querySelector('#posts .posts-result').textContent")
        .await
        .unwrap();
    assert!(shown.as_str().unwrap().contains("minutes"), "{shown}");
    assert_eq!(
        page.eval("document.querySelectorAll('#map [data-post]').length")
            .await
            .unwrap(),
        json!(0)
    );

    // The API's statuses: 400 with the reason, 409 for a period without incidents, 401
    // without a session.
    let answers = page
        .eval(&format!(
            "Promise.all(['brigades=3&minutes=61', 'brigades=2&minutes=1&since_ms={}', 'brigades=2&minutes=1&extra=1']
               .map((q) => fetch('/api/plan-posts?' + q).then(async (r) => [r.status, (await r.json()).error.message])))",
            now_ms - 3_600_000
        ))
        .await
        .unwrap();
    assert_eq!(answers[0][0], json!(400), "{answers}");
    assert!(
        answers[0][1].as_str().unwrap().contains("at most 60"),
        "{answers}"
    );
    assert_eq!(answers[1][0], json!(409), "{answers}");
    assert!(
        answers[1][1]
            .as_str()
            .unwrap()
            .contains("no presses in the period"),
        "{answers}"
    );
    assert_eq!(answers[2][0], json!(400), "{answers}");
    let anonymous = page
        .eval("fetch('/api/plan-posts?brigades=2&minutes=1', { credentials: 'omit' }).then((r) => r.status)")
        .await
        .unwrap();
    assert_eq!(anonymous, json!(401));

    // On the grid (the tile server gone, the console reopened): the same plan, drawn there.
    tiles.stop().await;
    page.goto(&harness.url("/")).await;
    page.wait_for(
        "the grid with the buttons",
        "window.centinelaMap.kind === 'grid' && document.querySelectorAll('#map svg.map-svg .map-button').length === 15",
        DEADLINE,
    )
    .await;
    assert_eq!(compute(&page, "2", "1").await, json!("shown"));
    expect_plan_drawn(&page, &expected).await;
    page.screenshot(&artifacts_dir().join("console-posts-grid.png"))
        .await;

    // The layer stays through the live redraws: a press redraws the map.
    harness.press("B05").await;
    page.wait_for(
        "an incident drawn with the posts still there",
        "document.querySelector('#map .map-incident') && document.querySelectorAll('#map [data-post]').length === 2",
        DEADLINE,
    )
    .await;

    assert!(
        page.eval("window.centinelaI18n.missing()")
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}
