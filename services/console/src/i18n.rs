//! Languages, time zone and page rendering: Spanish (es-PE) first, English on request.
//!
//! Every word a person reads comes from one message catalogue per language
//! (`assets/i18n/es.json`, `assets/i18n/en.json`): flat objects of `"area.key": "text"`, where
//! the text may name parameters as `{name}`. The pages use them two ways:
//!
//! - the HTML is rendered here per request: `{{t:key}}` becomes the escaped text in the
//!   request's language, `{{lang}}` the language (`<html lang>`), `{{timezone}}`,
//!   `{{map_tiles}}` and `{{map_attribution}}` the node's display settings;
//! - the scripts `import { t } from './i18n.js'`, which loads the same catalogue.
//!
//! The language of a request ([`negotiate`]): `?lang=es|en` first (and remembered in a
//! cookie), then the signed-in operator's own cookie (`centinela_lang_<hex of the id>`: one
//! browser at a call-center position serves several operators, each keeps their choice), then
//! the browser's last choice (`centinela_lang`), then — on the public page only, whose readers
//! are the city's residents and visitors — `Accept-Language`; Spanish otherwise. Cookies, not
//! the account: the accounts are a read-only file, and the login page must already speak the
//! right language before anyone has signed in.
//!
//! A test keeps the catalogues complete: the same keys in both, every key used by some asset,
//! every key an asset uses present ([`tests`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};

use crate::limits::LANG_COOKIE_MAX_AGE;

/// The Spanish catalogue (the default).
pub const CATALOGUE_ES: &str = include_str!("../assets/i18n/es.json");
/// The English catalogue.
pub const CATALOGUE_EN: &str = include_str!("../assets/i18n/en.json");

/// The browser's last language choice.
pub const LANG_COOKIE: &str = "centinela_lang";

/// A language the console speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Spanish as spoken in Peru: the default.
    #[default]
    Es,
    En,
}

impl Lang {
    /// The `<html lang>` value (BCP 47).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Es => "es-PE",
            Lang::En => "en",
        }
    }

    /// The short code used in `?lang=`, cookies and catalogue names.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }

    /// `es`, `es-PE`, `en`, `en-GB`... (case-insensitive); anything else is none of ours.
    pub fn parse(value: &str) -> Option<Lang> {
        let primary = value.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "es" => Some(Lang::Es),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    fn catalogue(self) -> &'static BTreeMap<String, String> {
        static ES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
        static EN: OnceLock<BTreeMap<String, String>> = OnceLock::new();
        let (cell, text) = match self {
            Lang::Es => (&ES, CATALOGUE_ES),
            Lang::En => (&EN, CATALOGUE_EN),
        };
        // The catalogues are compiled in and parsed by the unit tests: a broken one never
        // ships, so failing here is a programmer error.
        cell.get_or_init(|| serde_json::from_str(text).expect("the embedded catalogue is JSON"))
    }

    /// The text of `key`; the key itself when missing (the catalogue test keeps that from
    /// shipping).
    pub fn text(self, key: &str) -> &str {
        self.catalogue().get(key).map_or(key, String::as_str)
    }
}

/// Which page a language is negotiated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page<'a> {
    /// The console of this signed-in operator.
    Console { operator: &'a str },
    /// The login page (nobody signed in yet).
    Login,
    /// The public map: `Accept-Language` counts too.
    Public,
}

/// The cookie name keeping `operator`'s own choice: operator ids may hold `:` and `.`, which
/// cookie names may not, so the id is written in hex.
pub fn operator_cookie(operator: &str) -> String {
    let hex: String = operator.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{LANG_COOKIE}_{hex}")
}

/// The language of a request for `page`, and the `Set-Cookie` values that remember an
/// explicit `?lang=` choice. See the module docs for the order.
pub fn negotiate(headers: &HeaderMap, query: Option<&str>, page: Page<'_>) -> (Lang, Vec<String>) {
    let cookies = cookies(headers);
    if let Some(lang) = query.and_then(Lang::parse) {
        let remember = |name: &str| {
            format!(
                "{name}={}; Path=/; Max-Age={}; SameSite=Lax",
                lang.code(),
                LANG_COOKIE_MAX_AGE.as_secs()
            )
        };
        let mut set = vec![remember(LANG_COOKIE)];
        if let Page::Console { operator } = page {
            set.push(remember(&operator_cookie(operator)));
        }
        return (lang, set);
    }
    if let Page::Console { operator } = page
        && let Some(lang) = cookies
            .get(operator_cookie(operator).as_str())
            .and_then(|v| Lang::parse(v))
    {
        return (lang, Vec::new());
    }
    if let Some(lang) = cookies.get(LANG_COOKIE).and_then(|v| Lang::parse(v)) {
        return (lang, Vec::new());
    }
    if page == Page::Public
        && let Some(lang) = accept_language(headers)
    {
        return (lang, Vec::new());
    }
    (Lang::default(), Vec::new())
}

/// The request's cookies, name to value (the first of a repeated name).
fn cookies(headers: &HeaderMap) -> BTreeMap<&str, &str> {
    let mut found = BTreeMap::new();
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                found.entry(name.trim()).or_insert(value.trim());
            }
        }
    }
    found
}

/// The first of our languages in `Accept-Language`, by quality (RFC 9110 §12.5.4); ties keep
/// the header's order.
fn accept_language(headers: &HeaderMap) -> Option<Lang> {
    let mut best: Option<(u32, Lang)> = None;
    for value in headers.get_all(header::ACCEPT_LANGUAGE) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::parse) else {
                continue;
            };
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            // Thousandths, as the RFC allows no finer; q=0 means "not this one".
            let quality = (quality.clamp(0.0, 1.0) * 1000.0).round() as u32;
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
    }
    best.map(|(_, lang)| lang)
}

/// What pages show besides words: the city's time zone and the street map's tiles.
#[derive(Clone, Debug)]
pub struct Display {
    /// IANA time zone every time is shown in (`CENTINELA_TIMEZONE`).
    pub timezone: String,
    /// A `{z}/{x}/{y}` raster tile URL template (`CENTINELA_MAP_TILES`); none: the grid.
    pub map_tiles: Option<String>,
    /// The tiles' attribution (`CENTINELA_MAP_ATTRIBUTION`), shown on the map.
    pub map_attribution: String,
}

impl Default for Display {
    fn default() -> Self {
        Self {
            timezone: DEFAULT_TIMEZONE.to_string(),
            map_tiles: None,
            map_attribution: String::new(),
        }
    }
}

/// Lima's time zone: the default of `CENTINELA_TIMEZONE`.
pub const DEFAULT_TIMEZONE: &str = "America/Lima";

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `html` with its placeholders filled for `lang` and `display` (see the module docs). An
/// unknown placeholder is left as it is (the catalogue test finds it).
pub fn render(html: &str, lang: Lang, display: &Display) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 4);
    let mut rest = html;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let value = match name {
            "lang" => Some(lang.tag().to_string()),
            "timezone" => Some(escape_html(&display.timezone)),
            "map_tiles" => Some(escape_html(display.map_tiles.as_deref().unwrap_or(""))),
            "map_attribution" => Some(escape_html(&display.map_attribution)),
            _ => name
                .strip_prefix("t:")
                .map(|key| escape_html(lang.text(key))),
        };
        match value {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A rendered page, never cached, with the cookies that remember a language choice.
pub fn page(
    html: &str,
    lang: Lang,
    display: &Display,
    set_cookies: Vec<String>,
) -> axum::response::Response {
    let mut response = crate::assets::page_owned(render(html, lang, display));
    for cookie in set_cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every asset that may show words, by name and text.
    fn assets() -> Vec<(&'static str, &'static str)> {
        vec![
            ("console.html", include_str!("../assets/console.html")),
            ("console.js", include_str!("../assets/console.js")),
            ("calls.js", include_str!("../assets/calls.js")),
            ("login.html", include_str!("../assets/login.html")),
            ("login.js", include_str!("../assets/login.js")),
            ("public.html", include_str!("../assets/public.html")),
            ("public.js", include_str!("../assets/public.js")),
            ("map.js", include_str!("../assets/map.js")),
            ("posts.js", include_str!("../assets/posts.js")),
            ("reportes.html", include_str!("../assets/reportes.html")),
            ("reportes.js", include_str!("../assets/reportes.js")),
            ("wall.js", include_str!("../assets/wall.js")),
            ("i18n.js", include_str!("../assets/i18n.js")),
            (
                "brigada/index.html",
                include_str!("../assets/brigada/index.html"),
            ),
            ("brigada/app.js", include_str!("../assets/brigada/app.js")),
        ]
    }

    /// Keys named literally: `t('key'`, `t("key"`, `{{t:key}}`. And the prefixes of keys
    /// built at run time, `t(`prefix.${...}`)`: every key under such a prefix counts as used.
    fn used(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut keys = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        let bytes = text.as_bytes();
        for (at, _) in text.match_indices("t(") {
            // `t(` as a word: not `sort(`, `set(`.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &text[at + 2..];
            let Some(quote) = rest.chars().next() else {
                continue;
            };
            if !matches!(quote, '\'' | '"' | '`') {
                continue;
            }
            let Some(end) = rest[1..].find(quote) else {
                continue;
            };
            let literal = &rest[1..1 + end];
            match literal.split_once("${") {
                Some((prefix, _)) if quote == '`' => {
                    prefixes.insert(prefix.to_string());
                }
                _ => {
                    keys.insert(literal.to_string());
                }
            }
        }
        for (at, _) in text.match_indices("{{t:") {
            let rest = &text[at + 4..];
            if let Some(end) = rest.find("}}") {
                keys.insert(rest[..end].to_string());
            }
        }
        (keys, prefixes)
    }

    #[test]
    fn both_catalogues_have_the_same_keys_and_every_key_is_used_and_present() {
        let es = Lang::Es.catalogue();
        let en = Lang::En.catalogue();
        let es_keys: BTreeSet<_> = es.keys().cloned().collect();
        let en_keys: BTreeSet<_> = en.keys().cloned().collect();
        let only_es: Vec<_> = es_keys.difference(&en_keys).collect();
        let only_en: Vec<_> = en_keys.difference(&es_keys).collect();
        assert!(only_es.is_empty(), "keys missing from en.json: {only_es:?}");
        assert!(only_en.is_empty(), "keys missing from es.json: {only_en:?}");
        for (key, text) in es.iter().chain(en.iter()) {
            assert!(!text.trim().is_empty(), "{key} has no text");
        }

        let mut keys = BTreeSet::new();
        let mut prefixes = BTreeSet::new();
        for (name, text) in assets() {
            let (k, p) = used(text);
            for key in &k {
                assert!(
                    es_keys.contains(key),
                    "{name} uses {key:?}, which the catalogues lack"
                );
            }
            for prefix in &p {
                assert!(
                    es_keys.iter().any(|key| key.starts_with(prefix.as_str())),
                    "{name} builds keys under {prefix:?}, and the catalogues have none"
                );
            }
            keys.extend(k);
            prefixes.extend(p);
        }
        let unused: Vec<_> = es_keys
            .iter()
            .filter(|key| {
                !keys.contains(*key) && !prefixes.iter().any(|p| key.starts_with(p.as_str()))
            })
            .collect();
        assert!(unused.is_empty(), "keys no asset uses: {unused:?}");
    }

    #[test]
    fn parameters_match_between_languages() {
        let params = |text: &str| -> BTreeSet<String> {
            text.split('{')
                .skip(1)
                .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
                .collect()
        };
        for (key, es) in Lang::Es.catalogue() {
            let en = Lang::En.text(key);
            assert_eq!(params(es), params(en), "{key}: es {es:?}, en {en:?}");
        }
    }

    #[test]
    fn the_scanner_finds_literal_and_built_keys() {
        let (keys, prefixes) =
            used("t('a.b'); sort(x); t(\"c\", {n}); {{t:page.title}} t(`state.${s}`)");
        assert_eq!(keys, ["a.b", "c", "page.title"].map(String::from).into());
        assert_eq!(prefixes, ["state.".to_string()].into());
    }

    #[test]
    fn negotiation_order() {
        let with = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            headers
        };
        let none = HeaderMap::new();
        let ana = Page::Console { operator: "ana" };
        // Spanish unless someone says otherwise.
        assert_eq!(negotiate(&none, None, ana).0, Lang::Es);
        assert_eq!(negotiate(&none, None, Page::Public).0, Lang::Es);
        // `?lang=` wins and is remembered, for the browser and the operator.
        let (lang, set) = negotiate(&none, Some("en"), ana);
        assert_eq!(lang, Lang::En);
        assert_eq!(set.len(), 2);
        assert!(set[0].starts_with("centinela_lang=en;"));
        assert!(set[1].starts_with("centinela_lang_616e61=en;"), "{set:?}");
        // An unknown `?lang=` is ignored.
        assert_eq!(
            negotiate(&none, Some("fr"), Page::Login),
            (Lang::Es, vec![])
        );
        // The operator's own choice beats the browser's last one.
        let cookies = with(&[("cookie", "centinela_lang=en; centinela_lang_616e61=es")]);
        assert_eq!(negotiate(&cookies, None, ana).0, Lang::Es);
        assert_eq!(negotiate(&cookies, None, Page::Login).0, Lang::En);
        assert_eq!(
            negotiate(&cookies, None, Page::Console { operator: "luis" }).0,
            Lang::En
        );
        // Accept-Language on the public page only, by quality.
        let english = with(&[("accept-language", "fr;q=1, es;q=0.4, en-US;q=0.8")]);
        assert_eq!(negotiate(&english, None, Page::Public).0, Lang::En);
        assert_eq!(negotiate(&english, None, Page::Login).0, Lang::Es);
        let refused = with(&[("accept-language", "en;q=0")]);
        assert_eq!(negotiate(&refused, None, Page::Public).0, Lang::Es);
    }

    #[test]
    fn render_fills_and_escapes() {
        let display = Display {
            timezone: "America/Lima".into(),
            map_tiles: Some("http://t/{z}/{x}/{y}.png?a=1&b=\"2\"".into()),
            map_attribution: "<b>OSM</b>".into(),
        };
        let html = "<html lang=\"{{lang}}\" data-tiles=\"{{map_tiles}}\">{{map_attribution}} {{t:page.console.title}} {{nope}} {{";
        let out = render(html, Lang::En, &display);
        assert!(out.starts_with("<html lang=\"en\" data-tiles=\"http://t/{z}/{x}/{y}.png?a=1&amp;b=&quot;2&quot;\">&lt;b&gt;OSM&lt;/b&gt; "), "{out}");
        assert!(out.contains(Lang::En.text("page.console.title")));
        assert!(out.ends_with("{{nope}} {{"));
        assert!(render("{{lang}}", Lang::Es, &display) == "es-PE");
    }
}
