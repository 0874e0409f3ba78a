//! What the user and the transfers ask of the keys: FINGERPRINT, TRUST and VERIFY, the
//! PRIVACY column of WHO, and the keys of an encrypted image or file transfer.

use super::Chat;
use super::secure::Encryption;
use crate::client::transfer::TcpKeys;
use crate::codec::Handle;
use crate::e2e;
use crate::e2e::keys::Pin;

impl Chat {
    /// FINGERPRINT [handle], TRUST <handle>, VERIFY <handle>.
    pub(super) fn cmd_keys(&mut self, word: &str, rest: &str) -> Result<Vec<String>, String> {
        let mine = || -> Result<String, String> {
            self.secure
                .keys
                .as_ref()
                .map(|k| e2e::fingerprint(&k.public))
                .ok_or_else(|| "no key (encryption is unavailable; see the client's log)".into())
        };
        if word == "FINGERPRINT" && rest.is_empty() {
            return Ok(vec![format!("your safety number: {}", mine()?)]);
        }
        let h = Handle::new(rest).map_err(|e| format!("{rest:?} is not a handle: {e}"))?;
        let session = self
            .secure
            .peers
            .get(&h)
            .and_then(|p| p.session.as_ref())
            .map(|s| s.remote.clone());
        let pin = self.secure.pins.get(h.as_str()).cloned();
        match word {
            "FINGERPRINT" => {
                let mut out = Vec::new();
                match (&pin, &session) {
                    (None, None) => {
                        return Err(format!(
                            "no key known for {h} (it has not spoken encrypted with you)"
                        ));
                    }
                    (Some(p), s) => {
                        out.push(format!(
                            "{h}: {}{}",
                            e2e::fingerprint(&p.key),
                            if p.verified {
                                " (verified)"
                            } else {
                                " (pinned, not verified)"
                            }
                        ));
                        if let Some(s) = s.as_ref().filter(|s| **s != p.key) {
                            out.push(format!(
                                "{h} now presents another key: {} (TRUST {h} to accept it)",
                                e2e::fingerprint(s)
                            ));
                        }
                    }
                    (None, Some(s)) => out.push(format!("{h}: {}", e2e::fingerprint(s))),
                }
                out.push(format!("you:  {}", mine()?));
                Ok(out)
            }
            "TRUST" => {
                let key = session.ok_or_else(|| {
                    format!("no session with {h}: nothing to trust (it must be here and speak encrypted)")
                })?;
                let fp = e2e::fingerprint(&key);
                self.secure.pins.insert(
                    h.to_string(),
                    Pin {
                        key,
                        verified: false,
                    },
                );
                self.out.pins_changed = true;
                Ok(vec![format!("{h}'s key {fp} is now the one pinned")])
            }
            _ => {
                let mut p = pin.ok_or_else(|| format!("no key pinned for {h}"))?;
                if session.as_ref().is_some_and(|s| *s != p.key) {
                    return Err(format!(
                        "{h} presents another key than the one pinned; TRUST {h} first if you compared it"
                    ));
                }
                p.verified = true;
                let fp = e2e::fingerprint(&p.key);
                self.secure.pins.insert(h.to_string(), p);
                self.out.pins_changed = true;
                Ok(vec![format!("{h}'s key {fp} is marked verified")])
            }
        }
    }

    /// Whether `h` is guarded by a pinned key (a transfer in the clear claiming it is refused).
    pub fn guards(&self, h: &Handle) -> bool {
        self.guarded(h)
    }

    /// The keys of an encrypted transfer from `h`: ours and the pinned one, unless it presents
    /// another key now.
    pub fn tcp_keys_of(&self, h: &Handle) -> Option<TcpKeys> {
        if self.s.encryption == Encryption::Off {
            return None;
        }
        let keys = self.secure.keys.as_ref()?;
        let pin = self.secure.pins.get(h.as_str())?;
        let changed = self
            .secure
            .peers
            .get(h)
            .and_then(|p| p.session.as_ref())
            .is_some_and(|s| s.remote != pin.key);
        (!changed).then(|| TcpKeys {
            private: keys.private.clone(),
            remote: pin.key.clone(),
        })
    }

    /// How an image or a file goes to `to`: encrypted with these keys, in the clear (`None`), or
    /// not at all.
    pub fn transfer_keys(&self, to: &Handle) -> Result<Option<TcpKeys>, String> {
        if self.s.encryption == Encryption::Off {
            return Ok(None);
        }
        if self.secure.pins.contains_key(to.as_str()) {
            return self.tcp_keys_of(to).map(Some).ok_or_else(|| {
                format!(
                    "{to}'s key changed since it was pinned; compare safety numbers (FINGERPRINT {to}) and TRUST {to} if they match"
                )
            });
        }
        if self.s.encryption == Encryption::Require {
            return Err(format!(
                "{to} has no key pinned (a plain SLCP client, or no session yet); encryption = \"require\" sends nothing in the clear"
            ));
        }
        Ok(None)
    }

    /// What WHO shows of a peer's encryption.
    pub(super) fn privacy_of(&self, h: &Handle) -> &'static str {
        let pin = self.secure.pins.get(h.as_str());
        match self.secure.peers.get(h).and_then(|p| p.session.as_ref()) {
            Some(s) if pin.is_some_and(|p| p.key != s.remote) => "KEY CHANGED",
            Some(_) if pin.is_some_and(|p| p.verified) => "verified",
            Some(_) => "encrypted",
            None if pin.is_some() => "pinned, no session",
            None => "plain",
        }
    }
}
