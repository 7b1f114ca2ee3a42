//! Who may sign in to the console, and how sessions are keyed: the console's typed
//! configuration.
//!
//! Operators come from configuration, never from the store: the call center's roster is an
//! administrative decision, deployed like any other secret. Two equivalent sources, merged:
//!
//! - `CENTINELA_OPERATORS_FILE`: a TOML file (see `docs/console.md`):
//!   ```toml
//!   [[operators]]
//!   id = "ana"                     # recorded in every audit entry as operator:ana
//!   name = "Ana Quispe"            # shown in the console's header
//!   role = "supervisor"            # "operator", "supervisor" or "admin"
//!   password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
//!   ```
//! - `CENTINELA_OPERATORS`: the same accounts inline, whitespace-separated `id:role:hash`
//!   entries (handy for a Kubernetes secret mounted as an environment variable).
//!
//! Passwords are stored only as argon2id PHC strings (`cargo run -p centinela-console
//! --example hash-password` prints one). `CENTINELA_CONSOLE_SECRET` (at least
//! [`SESSION_SECRET_LEN_MIN`] bytes) keys the session cookies so they survive a restart and
//! are accepted by every node sharing it; without it each process draws a random key.
//!
//! What the pages show besides words (docs/console.md, "Language, time and map"):
//! `CENTINELA_TIMEZONE` (an IANA zone, default `America/Lima`) for every time shown,
//! `CENTINELA_MAP_TILES` (an `http(s)` raster tile URL template with `{z}`, `{x}` and `{y}`)
//! and `CENTINELA_MAP_ATTRIBUTION`; without tiles the map is the plain grid.
//!
//! **Demo mode** ([`Config::demo`]) adds the operator [`DEMO_OPERATOR`] (a supervisor, no
//! password): `/` signs a visitor in as it at once, so `centinela demo` opens on the live
//! queue. Never enable it on a node reachable by anyone but the person running the demo.

use std::collections::BTreeMap;
use std::path::Path;

use argon2::PasswordHash;
use centinela_core::ids::{BrigadeId, OperatorId};

use crate::i18n::Display;
use crate::limits::{DISPLAY_SETTING_LEN_MAX, OPERATORS_MAX};

/// The operator a demo console is signed in as; its actions are audited as `operator:demo`.
pub const DEMO_OPERATOR: &str = "demo";

/// Shortest accepted `CENTINELA_CONSOLE_SECRET`: 32 bytes of a random string carry enough
/// entropy that forging a session MAC is out of reach.
pub const SESSION_SECRET_LEN_MIN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("operator {id:?}: {reason}")]
    Account { id: String, reason: String },
    #[error("operator {0:?} is declared twice")]
    Duplicate(String),
    #[error("more than {OPERATORS_MAX} operators")]
    TooMany,
    #[error("CENTINELA_OPERATORS entry {entry:?}: expected id:role:argon2-hash")]
    Inline { entry: String },
    #[error("operators file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "CENTINELA_CONSOLE_SECRET is a placeholder (it contains {marker:?}), not a secret: generate one, e.g. `head -c 32 /dev/urandom | base64`"
    )]
    PlaceholderSecret { marker: &'static str },
    #[error("CENTINELA_CONSOLE_SECRET has {len} bytes, at least {SESSION_SECRET_LEN_MIN} needed")]
    ShortSecret { len: usize },
    #[error("{setting} {value:?}: {reason}")]
    Display {
        setting: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// What an account may do: officer (the brigade app, for one unit), operator, supervisor or
/// admin. The same roles authorize the gRPC
/// `Operator` API (`centinela_api::auth`), so there is one account system.
pub use centinela_api::auth::Role;

/// One person who may sign in.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: OperatorId,
    /// Shown in the console's header; the id when the configuration gives none.
    pub name: String,
    pub role: Role,
    /// The unit an officer acts for (`Some` exactly for [`Role::Officer`]).
    pub unit: Option<BrigadeId>,
    /// argon2id PHC string; `None` only for the demo operator, who never types a password.
    password_hash: Option<String>,
}

impl Account {
    /// A console account from configuration; the hash must be an argon2 PHC string. An
    /// officer needs its unit: [`Account::officer`].
    pub fn new(
        id: &str,
        name: Option<&str>,
        role: Role,
        password_hash: &str,
    ) -> Result<Self, Error> {
        Self::with_unit(id, name, role, None, password_hash)
    }

    /// An officer's account, bound to `unit`: it signs in to the brigade app only and acts
    /// there for that unit only.
    pub fn officer(
        id: &str,
        name: Option<&str>,
        unit: &str,
        password_hash: &str,
    ) -> Result<Self, Error> {
        Self::with_unit(id, name, Role::Officer, Some(unit), password_hash)
    }

    fn with_unit(
        id: &str,
        name: Option<&str>,
        role: Role,
        unit: Option<&str>,
        password_hash: &str,
    ) -> Result<Self, Error> {
        let account_error = |reason: String| Error::Account {
            id: id.to_string(),
            reason,
        };
        let unit = match (role, unit) {
            (Role::Officer, Some(unit)) => Some(
                BrigadeId::new(unit.trim())
                    .map_err(|e| account_error(format!("unit {unit:?}: {e}")))?,
            ),
            (Role::Officer, None) => {
                return Err(account_error(
                    "an officer's account names its unit (unit = \"U01\"; inline: id:officer@U01:hash)"
                        .into(),
                ));
            }
            (_, Some(unit)) => {
                return Err(account_error(format!(
                    "only an officer's account is bound to a unit; {role} cannot name unit {unit:?}"
                )));
            }
            (_, None) => None,
        };
        let operator = OperatorId::new(id).map_err(|e| account_error(e.to_string()))?;
        let parsed = PasswordHash::new(password_hash)
            .map_err(|e| account_error(format!("password_hash is not a PHC string: {e}")))?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(account_error(format!(
                "password_hash uses {}, expected argon2id",
                parsed.algorithm
            )));
        }
        Ok(Self {
            id: operator,
            name: name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(id)
                .to_string(),
            role,
            unit,
            password_hash: Some(password_hash.to_string()),
        })
    }

    fn demo() -> Self {
        Self {
            id: OperatorId::new(DEMO_OPERATOR).expect("the demo operator id is valid"),
            name: "Demo operator".into(),
            role: Role::Supervisor,
            unit: None,
            password_hash: None,
        }
    }

    pub(crate) fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref()
    }
}

/// The console's configuration. `Config::default()` has no operators: nobody can sign in
/// until some are configured (the login page says so).
#[derive(Clone, Debug, Default)]
pub struct Config {
    operators: BTreeMap<String, Account>,
    /// Demo mode: see the module docs.
    pub demo: bool,
    /// Keys the session cookies; `None`: a random key per process.
    session_secret: Option<Vec<u8>>,
    /// Time zone and map tiles the pages use.
    pub display: Display,
}

/// The operators file's shape.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    operators: Vec<FileAccount>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccount {
    id: String,
    name: Option<String>,
    role: Role,
    /// An officer's unit.
    unit: Option<String>,
    password_hash: String,
}

impl Config {
    /// The `centinela demo` configuration: demo mode, no other operators.
    pub fn demo() -> Self {
        Self {
            demo: true,
            ..Self::default()
        }
    }

    /// Adds accounts; an id declared twice is refused.
    pub fn with_operators(mut self, accounts: Vec<Account>) -> Result<Self, Error> {
        for account in accounts {
            let id = account.id.to_string();
            if self.operators.contains_key(&id) {
                return Err(Error::Duplicate(id));
            }
            if self.operators.len() >= OPERATORS_MAX {
                return Err(Error::TooMany);
            }
            self.operators.insert(id, account);
        }
        Ok(self)
    }

    /// Sets the session key; see the module docs.
    pub fn with_session_secret(mut self, secret: &str) -> Result<Self, Error> {
        if let Some(marker) = centinela_api::auth::placeholder_marker(secret) {
            return Err(Error::PlaceholderSecret { marker });
        }
        if secret.len() < SESSION_SECRET_LEN_MIN {
            return Err(Error::ShortSecret { len: secret.len() });
        }
        self.session_secret = Some(secret.as_bytes().to_vec());
        Ok(self)
    }

    /// `CENTINELA_OPERATORS_FILE`, `CENTINELA_OPERATORS` and `CENTINELA_CONSOLE_SECRET`, on
    /// top of `self` (so `Config::demo().from_env()` is a demo that also knows the roster).
    pub fn from_env(self) -> Result<Self, Error> {
        let mut config = self;
        if let Some(path) = std::env::var_os("CENTINELA_OPERATORS_FILE") {
            config = config.with_operators(parse_file(Path::new(&path))?)?;
        }
        if let Ok(inline) = std::env::var("CENTINELA_OPERATORS") {
            config = config.with_operators(parse_inline(&inline)?)?;
        }
        if let Ok(secret) = std::env::var("CENTINELA_CONSOLE_SECRET") {
            config = config.with_session_secret(&secret)?;
        }
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        if let Some(zone) = var("CENTINELA_TIMEZONE") {
            config = config.with_timezone(&zone)?;
        }
        if let Some(tiles) = var("CENTINELA_MAP_TILES") {
            config = config.with_map_tiles(&tiles, var("CENTINELA_MAP_ATTRIBUTION").as_deref())?;
        }
        Ok(config)
    }

    /// Shows every time in `zone`, an IANA name such as `America/Lima`, checked against the
    /// IANA database bundled into the binary; a name the browser does not know (an older
    /// browser) falls back to `America/Lima` there, with a warning in the page's log.
    pub fn with_timezone(mut self, zone: &str) -> Result<Self, Error> {
        let zone = zone.trim();
        let refuse = |reason| Error::Display {
            setting: "CENTINELA_TIMEZONE",
            value: zone.chars().take(DISPLAY_SETTING_LEN_MAX).collect(),
            reason,
        };
        if zone.is_empty() || zone.len() > DISPLAY_SETTING_LEN_MAX {
            return Err(refuse("expected an IANA time zone such as America/Lima"));
        }
        if !zone
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
        {
            return Err(refuse("expected an IANA time zone such as America/Lima"));
        }
        // The same bundled IANA database the CLI and the hand-offs use: a name the node does
        // not know stops it at start rather than showing the wrong hour.
        if centinela_handoff::cap::Sender::zone_named(zone).is_err() {
            return Err(refuse(
                "no such time zone in the IANA database (e.g. America/Lima, UTC)",
            ));
        }
        self.display.timezone = zone.to_string();
        Ok(self)
    }

    /// Draws the street map from `template` (`http(s)://host/.../{z}/{x}/{y}.png`), credited
    /// with `attribution`.
    pub fn with_map_tiles(
        mut self,
        template: &str,
        attribution: Option<&str>,
    ) -> Result<Self, Error> {
        let template = template.trim();
        let refuse = |reason| Error::Display {
            setting: "CENTINELA_MAP_TILES",
            value: template.chars().take(DISPLAY_SETTING_LEN_MAX).collect(),
            reason,
        };
        if template.len() > DISPLAY_SETTING_LEN_MAX {
            return Err(refuse("too long for a tile URL template"));
        }
        if tile_origin(template).is_none() {
            return Err(refuse("expected an http:// or https:// URL"));
        }
        if !["{z}", "{x}", "{y}"].iter().all(|p| template.contains(p)) {
            return Err(refuse("the template needs {z}, {x} and {y}"));
        }
        if template
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(refuse("a URL has no spaces or control characters"));
        }
        let attribution = attribution.unwrap_or("").trim();
        if attribution.len() > DISPLAY_SETTING_LEN_MAX {
            return Err(Error::Display {
                setting: "CENTINELA_MAP_ATTRIBUTION",
                value: attribution.chars().take(DISPLAY_SETTING_LEN_MAX).collect(),
                reason: "too long for a map credit",
            });
        }
        self.display.map_tiles = Some(template.to_string());
        self.display.map_attribution = attribution.to_string();
        Ok(self)
    }

    /// The account `id` signs in as: a configured one, or the demo operator in demo mode.
    pub fn account(&self, id: &str) -> Option<Account> {
        match self.operators.get(id) {
            Some(account) => Some(account.clone()),
            None if self.demo && id == DEMO_OPERATOR => Some(Account::demo()),
            None => None,
        }
    }

    /// The configured accounts (not the demo operator).
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.operators.values()
    }

    /// Whether anyone at all can sign in.
    pub fn has_operators(&self) -> bool {
        self.demo || !self.operators.is_empty()
    }

    pub(crate) fn session_secret(&self) -> Option<&[u8]> {
        self.session_secret.as_deref()
    }
}

/// `scheme://host[:port]` of a tile URL template: the one origin the pages may load images
/// from besides the node (the Content-Security-Policy names it). `None` unless http(s) with a
/// host.
pub fn tile_origin(template: &str) -> Option<String> {
    let (scheme, rest) = template.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    // Host, optional port, and Leaflet's `{s}` subdomain placeholder; no user info.
    let ok = !authority.is_empty()
        && authority
            .replace("{s}", "s")
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{authority}"))
}

/// Accounts from an operators file (TOML; see the module docs).
pub fn parse_file(path: &Path) -> Result<Vec<Account>, Error> {
    let file_error = |reason: String| Error::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    parse_toml(&text).map_err(|e| match e {
        Error::File { reason, .. } => file_error(reason),
        other => other,
    })
}

/// Accounts from the text of an operators file.
pub fn parse_toml(text: &str) -> Result<Vec<Account>, Error> {
    let file: File = toml::from_str(text).map_err(|e| Error::File {
        path: "(inline)".into(),
        reason: e.to_string(),
    })?;
    if file.operators.len() > OPERATORS_MAX {
        return Err(Error::TooMany);
    }
    file.operators
        .iter()
        .map(|a| {
            Account::with_unit(
                &a.id,
                a.name.as_deref(),
                a.role,
                a.unit.as_deref(),
                &a.password_hash,
            )
        })
        .collect()
}

/// Accounts from `CENTINELA_OPERATORS`: whitespace-separated `id:role:hash` entries. Ids may
/// themselves contain `:`, so an entry splits at the `:$` that starts the hash.
pub fn parse_inline(text: &str) -> Result<Vec<Account>, Error> {
    let mut accounts = Vec::new();
    for entry in text.split_whitespace() {
        let inline_error = || Error::Inline {
            entry: entry.chars().take(80).collect(),
        };
        let (who, hash) = entry.split_once(":$").ok_or_else(inline_error)?;
        let (id, role) = who.rsplit_once(':').ok_or_else(inline_error)?;
        // `officer@U01`: an officer and its unit (`@` is in no id).
        let (role, unit) = match role.split_once('@') {
            Some((role, unit)) => (role, Some(unit)),
            None => (role, None),
        };
        let role = Role::parse(role).ok_or_else(|| Error::Account {
            id: id.to_string(),
            reason: format!("role {role:?} is not officer, operator, supervisor or admin"),
        })?;
        accounts.push(Account::with_unit(
            id,
            None,
            role,
            unit,
            &format!("${hash}"),
        )?);
        if accounts.len() > OPERATORS_MAX {
            return Err(Error::TooMany);
        }
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A well-formed argon2id PHC string: parsing the configuration checks the format only.
    const HASH: &str = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$+Uk3z4Mvy8QV0h0D9DJgDW+O2x4oQ0yCb8ZnVJ9dQ0c";

    #[test]
    fn display_settings_are_checked() {
        let ok = Config::default()
            .with_timezone("America/Lima")
            .unwrap()
            .with_map_tiles(
                "https://{s}.tile.example.org/{z}/{x}/{y}.png",
                Some("© OpenStreetMap"),
            )
            .unwrap();
        assert_eq!(ok.display.timezone, "America/Lima");
        assert_eq!(ok.display.map_attribution, "© OpenStreetMap");
        assert!(Config::default().with_timezone("UTC").is_ok());
        for zone in [
            "",
            "Lima; rm",
            "America/Lima<script>",
            "Mars/Olympus",
            &"x".repeat(600),
        ] {
            assert!(Config::default().with_timezone(zone).is_err(), "{zone:?}");
        }
        for tiles in [
            "ftp://t/{z}/{x}/{y}",
            "https://t/{z}/{x}.png",
            "https:///{z}/{x}/{y}",
            "https://user@t/{z}/{x}/{y}",
            "https://t{q}/{z}/{x}/{y}",
            "https://t/{z}/{x}/{y} x",
            "javascript:alert(1)//{z}/{x}/{y}",
        ] {
            assert!(
                Config::default().with_map_tiles(tiles, None).is_err(),
                "{tiles:?}"
            );
        }
        assert_eq!(
            tile_origin("http://127.0.0.1:8081/tiles/{z}/{x}/{y}.png").as_deref(),
            Some("http://127.0.0.1:8081")
        );
        let policy =
            crate::content_security_policy(Some("https://{s}.tile.example.org/{z}/{x}/{y}.png"));
        assert!(
            policy
                .to_str()
                .unwrap()
                .contains("img-src 'self' data: blob: https://*.tile.example.org;"),
            "{policy:?}"
        );
        assert!(
            !crate::content_security_policy(None)
                .to_str()
                .unwrap()
                .contains("http")
        );
    }

    #[test]
    fn inline_entries_split_at_the_hash() {
        let accounts = parse_inline(&format!(
            "ana:supervisor:{HASH}\n  sala:2:luis:operator:{HASH}"
        ))
        .unwrap();
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[0].id.as_str(), "ana");
        assert_eq!(accounts[0].role, Role::Supervisor);
        assert_eq!(accounts[1].id.as_str(), "sala:2:luis");
        assert_eq!(accounts[1].role, Role::Operator);
        assert_eq!(accounts[1].name, "sala:2:luis");
        assert!(matches!(
            parse_inline("ana:supervisor"),
            Err(Error::Inline { .. })
        ));
        assert!(matches!(
            parse_inline(&format!("ana:boss:{HASH}")),
            Err(Error::Account { .. })
        ));
    }

    #[test]
    fn an_officer_is_bound_to_exactly_one_unit() {
        let inline = parse_inline(&format!("rosa:officer@U01:{HASH}")).unwrap();
        assert_eq!(inline[0].role, Role::Officer);
        assert_eq!(inline[0].unit.as_ref().unwrap().as_str(), "U01");
        let file = parse_toml(&format!(
            "[[operators]]\nid = \"rosa\"\nrole = \"officer\"\nunit = \"U07\"\npassword_hash = \"{HASH}\"\n"
        ))
        .unwrap();
        assert_eq!(file[0].unit.as_ref().unwrap().as_str(), "U07");
        // An officer without a unit, a console role with one, a malformed unit: refused.
        for entry in [
            format!("rosa:officer:{HASH}"),
            format!("ana:operator@U01:{HASH}"),
            format!("rosa:officer@U/1:{HASH}"),
        ] {
            let err = parse_inline(&entry).unwrap_err().to_string();
            assert!(err.contains("unit"), "{entry}: {err}");
        }
        assert!(Account::new("rosa", None, Role::Officer, HASH).is_err());
        assert!(Role::Officer < Role::Operator && !Role::Officer.is_console());
    }

    #[test]
    fn file_accounts_are_validated() {
        let text = format!(
            "[[operators]]\nid = \"ana\"\nname = \"Ana Quispe\"\nrole = \"supervisor\"\npassword_hash = \"{HASH}\"\n"
        );
        let accounts = parse_toml(&text).unwrap();
        assert_eq!(accounts[0].name, "Ana Quispe");
        let plain = text.replace(HASH, "hunter2");
        let err = parse_toml(&plain).unwrap_err().to_string();
        assert!(err.contains("not a PHC string"), "{err}");
        let bad_id = text.replace("\"ana\"", "\"ana maría\"");
        assert!(parse_toml(&bad_id).is_err());
        assert!(parse_toml("[[operators]]\nid = \"x\"\nrole = \"operator\"\npassword_hash = \"$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$+Uk3z4Mvy8QV0h0D9DJgDW+O2x4oQ0yCb8ZnVJ9dQ0c\"\nextra = 1\n").is_err());
    }

    #[test]
    fn duplicates_and_short_secrets_are_refused() {
        let account = Account::new("ana", None, Role::Operator, HASH).unwrap();
        let config = Config::default()
            .with_operators(vec![account.clone()])
            .unwrap();
        assert!(matches!(
            config.clone().with_operators(vec![account]),
            Err(Error::Duplicate(_))
        ));
        assert!(matches!(
            config.clone().with_session_secret("short"),
            Err(Error::ShortSecret { len: 5 })
        ));
        assert!(matches!(
            config.with_session_secret("change-me-with-head-c-32-dev-urandom-base64"),
            Err(Error::PlaceholderSecret {
                marker: "change-me"
            })
        ));
    }

    #[test]
    fn the_demo_operator_exists_only_in_demo_mode() {
        assert!(Config::default().account(DEMO_OPERATOR).is_none());
        assert!(!Config::default().has_operators());
        let demo = Config::demo().account(DEMO_OPERATOR).unwrap();
        assert_eq!(demo.role, Role::Supervisor);
        assert!(demo.password_hash().is_none());
        assert!(Role::Supervisor.may_cancel() && !Role::Operator.may_cancel());
    }
}
