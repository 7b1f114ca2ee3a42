//! The store contract (`tests/contract`) against the embedded store, one fresh store per case,
//! through the in-process channel, on paused tokio time (leases expire without real waiting).

#[macro_use]
mod contract;

use centinela_store::{EmbeddedStore, Store};

macro_rules! embedded_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $case() {
                let embedded = EmbeddedStore::new();
                contract::$case(Store::embedded(&embedded), "/contract/".to_owned()).await;
            }
        )*
    };
}

for_each_case!(embedded_cases);
