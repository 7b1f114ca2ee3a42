//! The accounts the node signs in to cameras with: one for every ONVIF camera
//! (`CENTINELA_ONVIF_USER` / `CENTINELA_ONVIF_PASSWORD`), overridden per camera by a TOML file
//! (`CENTINELA_CAMERAS_FILE`):
//!
//! ```toml
//! [[cameras]]
//! id = "CAM-007"
//! username = "centinela"
//! password = "..."
//! ```
//!
//! They are node configuration, like the cluster secret: never written to the store, never
//! shown by the API, and redacted from `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use centinela_core::ids::CameraId;

pub const USER_VAR: &str = "CENTINELA_ONVIF_USER";
pub const PASSWORD_VAR: &str = "CENTINELA_ONVIF_PASSWORD";
pub const FILE_VAR: &str = "CENTINELA_CAMERAS_FILE";

/// A camera account.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Which account signs in to which camera.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    /// For every camera without its own.
    pub default: Option<Login>,
    pub cameras: BTreeMap<CameraId, Login>,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("{USER_VAR} is set without {PASSWORD_VAR} (or the other way round); set both")]
    HalfSet,
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    cameras: Vec<FileEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    id: CameraId,
    username: String,
    password: String,
}

impl Credentials {
    /// One account for every camera.
    pub fn shared(username: &str, password: &str) -> Self {
        Self {
            default: Some(Login {
                username: username.to_string(),
                password: password.to_string(),
            }),
            cameras: BTreeMap::new(),
        }
    }

    /// From the environment: the shared account, then the per-camera file.
    pub fn from_env() -> Result<Self, CredentialsError> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let mut credentials = match (var(USER_VAR), var(PASSWORD_VAR)) {
            (Some(user), Some(password)) => Self::shared(&user, &password),
            (None, None) => Self::default(),
            _ => return Err(CredentialsError::HalfSet),
        };
        if let Some(path) = var(FILE_VAR) {
            credentials.read_file(Path::new(&path))?;
        }
        Ok(credentials)
    }

    /// Adds the per-camera accounts of the file at `path`.
    pub fn read_file(&mut self, path: &Path) -> Result<(), CredentialsError> {
        let fail = |reason: String| CredentialsError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        self.add_toml(&text).map_err(fail)
    }

    fn add_toml(&mut self, text: &str) -> Result<(), String> {
        let file: File = toml::from_str(text).map_err(|e| e.message().to_string())?;
        for entry in file.cameras {
            if entry.username.is_empty() {
                return Err(format!("camera {}: username is empty", entry.id));
            }
            let login = Login {
                username: entry.username,
                password: entry.password,
            };
            if self.cameras.insert(entry.id.clone(), login).is_some() {
                return Err(format!("camera {} is listed more than once", entry.id));
            }
        }
        Ok(())
    }

    /// The account for `camera`, if any.
    pub fn login(&self, camera: &CameraId) -> Option<&Login> {
        self.cameras.get(camera).or(self.default.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CameraId {
        CameraId::new(s).unwrap()
    }

    #[test]
    fn a_camera_of_its_own_overrides_the_shared_account() {
        let mut c = Credentials::shared("ops", "shared");
        c.add_toml("[[cameras]]\nid = \"CAM-2\"\nusername = \"admin\"\npassword = \"p2\"\n")
            .unwrap();
        assert_eq!(c.login(&id("CAM-1")).unwrap().password, "shared");
        assert_eq!(c.login(&id("CAM-2")).unwrap().username, "admin");
        assert!(Credentials::default().login(&id("CAM-1")).is_none());
    }

    #[test]
    fn bad_files_are_named() {
        let mut c = Credentials::default();
        let twice = "[[cameras]]\nid = \"C\"\nusername = \"a\"\npassword = \"b\"\n".repeat(2);
        assert_eq!(
            c.add_toml(&twice).unwrap_err(),
            "camera C is listed more than once"
        );
        let e = Credentials::default()
            .add_toml("[[cameras]]\nid = \"C\"\nuser = \"a\"\n")
            .unwrap_err();
        assert!(e.contains("user"), "{e}");
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        let c = Credentials::shared("ops", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
