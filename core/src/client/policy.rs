//! What the transfers and the plugins ask of the chat: the plugin call environment drawn from
//! the chat's state, and the receiving side's questions (who sent it, take it, its name).

use std::net::IpAddr;

use super::PluginSetup;
use super::chat::Chat;
use super::transfer;
use crate::codec::Handle;
use crate::plugin::{Ask, CallEnv, PluginHost};

/// Runs `f` with the plugin call environment drawn from the chat's current state.
pub(super) fn with_env<T>(
    chat: &Chat,
    setup: &mut PluginSetup,
    f: impl FnOnce(&mut CallEnv<'_>) -> T,
) -> T {
    let handle = chat.handle().to_string();
    let peers = chat.peers();
    let known = |h: &str| Handle::new(h).is_ok_and(|h| peers.contains_key(&h));
    let mut env = CallEnv {
        handle: &handle,
        away: chat.is_away(),
        known: &known,
        config: &mut setup.config,
        persist: &mut *setup.persist,
    };
    f(&mut env)
}

/// The receiving side's questions, answered from the chat and the plugins.
pub(super) struct ShellPolicy<'a> {
    pub(super) chat: &'a Chat,
    pub(super) plugins: &'a mut PluginHost,
    pub(super) setup: &'a mut PluginSetup,
}

impl transfer::Policy for ShellPolicy<'_> {
    fn knows(&mut self, h: &Handle) -> bool {
        h == self.chat.handle() || self.chat.peers().contains_key(h)
    }

    fn sender(&mut self, named: &Handle, ip: IpAddr) -> Result<String, String> {
        let from = self.chat.image_sender(named, ip)?;
        if Handle::new(&from).is_ok_and(|h| self.chat.guards(&h)) {
            return Err(format!(
                "{from}'s key is pinned: an image in the clear that claims to be from {from} is refused"
            ));
        }
        Ok(from)
    }

    fn offer(&mut self, from: &str, size: u64) -> Result<(), String> {
        let plugins = &mut *self.plugins;
        match with_env(self.chat, self.setup, |env| {
            plugins.ask(Ask::ImageOffer { from, size }, env)
        }) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e),
            None => Err(
                "no plugin receives images (is the img plugin installed? PLUGINS lists them)"
                    .into(),
            ),
        }
    }

    fn file_sender(&mut self, named: &Handle, ip: IpAddr) -> Result<String, String> {
        if self.chat.guards(named) {
            return Err(format!(
                "{named}'s key is pinned: a file in the clear that claims to be from {named} is refused"
            ));
        }
        self.chat.file_sender(named, ip)
    }

    fn tcp_keys(&mut self, named: &Handle) -> Option<transfer::TcpKeys> {
        self.chat.tcp_keys_of(named)
    }

    fn name(&mut self, from: &str, size: u64, head: &[u8]) -> Result<String, String> {
        let plugins = &mut *self.plugins;
        match with_env(self.chat, self.setup, |env| {
            plugins.ask(Ask::ImageName { from, size, head }, env)
        }) {
            Some(r) => r,
            None => Err("no plugin names images".into()),
        }
    }
}
