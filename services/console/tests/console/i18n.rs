//! Issue 18, item 1: the console speaks Spanish first and English when an operator chooses
//! it; the choice is the operator's own; every key the pages ask for is in the catalogue;
//! every time is shown in the city's zone (America/Lima, UTC−5 all year), 24-hour.

use serde_json::json;

use centinela_console::i18n::Lang;
use centinela_testkit::browser::{self, Browser, Page};

use crate::{
    ANA, DEADLINE, Harness, LUIS, artifacts_dir, card, http, js, no_page_problems, operators,
    signed_in_live,
};

/// Lima is UTC−5 with no daylight saving: the wall-clock time of `at_ms` there.
fn lima_clock(at_ms: u64) -> String {
    let seconds = (at_ms / 1000) as i64 - 5 * 3600;
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        of_day / 3600,
        (of_day % 3600) / 60,
        of_day % 60
    )
}

pub(crate) async fn sign_in(page: &Page<'_>, who: (&str, &str)) {
    page.wait_for("the login page", "location.pathname === '/login'", DEADLINE)
        .await;
    page.type_into("#operator", who.0).await;
    page.type_into("#password", who.1).await;
    page.click("#submit").await;
    page.wait_for("the console", "location.pathname === '/'", DEADLINE)
        .await;
    signed_in_live(page).await;
}

pub(crate) async fn sign_out(page: &Page<'_>) {
    page.click("#logout").await;
    page.wait_for("the login page", "location.pathname === '/login'", DEADLINE)
        .await;
}

/// The page is in `lang` and asked for no key its catalogue lacks.
async fn speaks(page: &Page<'_>, lang: Lang) {
    page.wait_for(
        &format!("the page in {}", lang.tag()),
        &format!(
            "document.documentElement.lang === {} && window.centinelaI18n?.lang === {}",
            js(lang.tag()),
            js(lang.code())
        ),
        DEADLINE,
    )
    .await;
    let missing = page.eval("window.centinelaI18n.missing()").await.unwrap();
    assert_eq!(missing, json!([]), "keys missing from {}.json", lang.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spanish_first_english_when_chosen_and_times_in_lima() {
    let Some(chromium) = browser::chromium() else {
        return;
    };
    let mut harness = Harness::start(operators(), false).await;
    let addr = harness.node.http_addr();

    // The public page follows Accept-Language; the others do not; `?lang=` beats both.
    let public = |accept: &'static str| async move {
        http::get_with(addr, "/public/", &format!("Accept-Language: {accept}\r\n")).await
    };
    assert!(
        public("es-PE,es;q=0.9")
            .await
            .body
            .contains("<html lang=\"es-PE\"")
    );
    assert!(
        public("en-US,en;q=0.9,es;q=0.5")
            .await
            .body
            .contains("<html lang=\"en\"")
    );
    assert!(public("fr-FR").await.body.contains("<html lang=\"es-PE\""));
    let login = http::get_with(addr, "/login", "Accept-Language: en-US\r\n").await;
    assert!(
        login.body.contains("<html lang=\"es-PE\""),
        "the login page is Spanish first"
    );
    assert!(login.body.contains(Lang::Es.text("login.submit")));
    let chosen = http::get_with(addr, "/login?lang=en", "").await;
    assert!(chosen.body.contains("<html lang=\"en\""));
    assert!(chosen.body.contains(Lang::En.text("login.submit")));
    assert!(
        chosen
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("centinela_lang=en;")),
        "the choice is remembered"
    );

    let (incident, _) = harness.press("B01").await;
    let browser = Browser::launch(&chromium, Some(artifacts_dir())).await;
    let page = browser.new_page().await;

    // Spanish by default, from the login page on.
    page.goto(&harness.url("/")).await;
    speaks(&page, Lang::Es).await;
    assert_eq!(
        page.eval("document.getElementById('submit').textContent")
            .await
            .unwrap(),
        json!(Lang::Es.text("login.submit"))
    );
    sign_in(&page, ANA).await;
    speaks(&page, Lang::Es).await;
    crate::select_incident(&page, &incident).await;
    page.wait_for(
        "the Spanish acknowledge button",
        &format!(
            "document.getElementById('act-ack')?.textContent === {}",
            js(Lang::Es.text("action.ack"))
        ),
        DEADLINE,
    )
    .await;
    page.wait_for(
        "the audit trail",
        "document.querySelectorAll('#d-audit time').length > 0",
        DEADLINE,
    )
    .await;
    speaks(&page, Lang::Es).await;

    // Times in Lima's zone, 24-hour: the incident's first audit entry as the node recorded it.
    let opened_ms = page
        .eval(&format!(
            "fetch('/api/incidents/' + encodeURIComponent({})).then((r) => r.json()).then((i) => i.audit[0].at_ms)",
            js(&incident)
        ))
        .await
        .unwrap()
        .as_u64()
        .expect("an audit time");
    assert_eq!(
        page.eval("window.centinelaI18n.timeZone").await.unwrap(),
        json!("America/Lima")
    );
    assert_eq!(
        page.eval("document.querySelector('#d-audit time').textContent")
            .await
            .unwrap(),
        json!(lima_clock(opened_ms)),
        "the audit entry at {opened_ms} ms shown in Lima's time"
    );
    page.screenshot(&artifacts_dir().join("console-es.png"))
        .await;

    // Ana switches to English with the keyboard (L); it stays after a reload.
    page.key('l').await;
    speaks(&page, Lang::En).await;
    signed_in_live(&page).await;
    page.goto(&harness.url("/")).await;
    speaks(&page, Lang::En).await;
    page.click(&card(&incident)).await;
    page.wait_for(
        "the English acknowledge button",
        &format!(
            "document.getElementById('act-ack')?.textContent === {}",
            js(Lang::En.text("action.ack"))
        ),
        DEADLINE,
    )
    .await;
    speaks(&page, Lang::En).await;

    // Luis at the same position starts from the position's last choice and picks Spanish ...
    sign_out(&page).await;
    sign_in(&page, LUIS).await;
    speaks(&page, Lang::En).await;
    page.click("#lang").await;
    speaks(&page, Lang::Es).await;
    signed_in_live(&page).await;
    // ... which does not change Ana's own choice.
    sign_out(&page).await;
    sign_in(&page, ANA).await;
    speaks(&page, Lang::En).await;

    no_page_problems(&browser);
    browser.close().await;
    harness.shutdown().await;
}
