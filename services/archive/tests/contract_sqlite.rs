//! The archive contract (`tests/contract`) against the embedded default: SQLite, in a file
//! in a temporary directory (as a node's `--archive sqlite:PATH`) and in memory (the demo's).

#[macro_use]
mod contract;

use centinela_archive::Archive;

macro_rules! sqlite_cases {
    ($($case:ident),* $(,)?) => {
        mod file {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = format!("sqlite:{}", dir.path().join("archive.db").display());
                    let archive = super::Archive::open(&url).unwrap();
                    super::contract::$case(archive.clone()).await;
                    archive.close().await;
                }
            )*
        }
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::contract::$case(super::Archive::memory()).await;
                }
            )*
        }
    };
}

for_each_case!(sqlite_cases);
