//! The plugins that ship with slcp, linked into the binary, so `cargo run` and `cargo install`
//! give all of them with no extra step. They are registered through the same declaration a
//! plugin file exports (and checked the same way); a `.so` on the plugin path is for the rest.

use std::sync::OnceLock;

use slcp_core::plugin::Bundled;
use slcp_plugin_api::{ABI_VERSION, Declaration, PluginDecl, declaration};

fn autoreply() -> *const PluginDecl {
    static D: OnceLock<Declaration> = OnceLock::new();
    declaration::<slcp_plugin_autoreply::AutoReply>(&D, ABI_VERSION)
}

fn dice() -> *const PluginDecl {
    static D: OnceLock<Declaration> = OnceLock::new();
    declaration::<slcp_plugin_dice::Dice>(&D, ABI_VERSION)
}

fn img() -> *const PluginDecl {
    static D: OnceLock<Declaration> = OnceLock::new();
    declaration::<slcp_plugin_img::Img>(&D, ABI_VERSION)
}

/// Every plugin built in, by name.
pub const ALL: &[Bundled] = &[
    Bundled {
        name: "autoreply",
        declaration: autoreply,
    },
    Bundled {
        name: "dice",
        declaration: dice,
    },
    Bundled {
        name: "img",
        declaration: img,
    },
];

/// The built-in plugins the config's `bundled` key names, and the names it lists that are not
/// built in.
pub fn enabled(names: &[String]) -> (Vec<Bundled>, Vec<String>) {
    let on = ALL
        .iter()
        .filter(|b| names.iter().any(|n| n == b.name))
        .copied()
        .collect();
    let unknown = names
        .iter()
        .filter(|n| !ALL.iter().any(|b| b.name == n.as_str()))
        .cloned()
        .collect();
    (on, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_knows_every_built_in_plugin_and_each_declares_itself() {
        let names: Vec<&str> = ALL.iter().map(|b| b.name).collect();
        assert_eq!(names, slcp_config::keys::BUNDLED);
        let (found, failed) = slcp_core::plugin::scan(&[], ALL);
        assert!(
            failed.is_empty(),
            "{:?}",
            failed.iter().map(|f| &f.why).collect::<Vec<_>>()
        );
        let got: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(got, names);
        assert!(found.iter().all(|f| f.builtin));
    }
}
