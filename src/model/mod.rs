//! The Meilisearch model: the validated names and identifiers of Meilisearch's API, with the
//! rules and error wording of Meilisearch 1.50 (`meilisearch-types`, milli). Handlers take
//! these types, never raw client strings, and node URLs are built only from them
//! ([`crate::node::path::NodePath`]).

pub mod deserr;
pub mod document_id;
pub mod fields;
pub mod index_uid;
pub mod json;
pub mod render;
pub mod search;
pub mod setting;

pub use document_id::DocumentId;
pub use index_uid::IndexUid;
pub use setting::SettingRoute;
