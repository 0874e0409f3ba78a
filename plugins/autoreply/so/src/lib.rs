//! The autoreply plugin as a `.so` for the plugin path. The slcp binary links the same plugin in
//! (see `repl/src/bundled.rs`); this library exists for other builds of slcp and for the tests
//! that load real plugin files.

slcp_plugin_api::export_plugin!(slcp_plugin_autoreply::AutoReply);
