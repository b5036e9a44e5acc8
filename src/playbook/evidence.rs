//! `[evidence]`: how each run's record is signed (`restore-drill verify` checks it).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Signs each run's JSON record with a minisign key: `restore_drill_<ts>.minisig`
/// beside it, which the stock `minisign -V` verifies.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceSettings {
    /// A minisign secret key, from a secret: `"{{ secrets.minisign_key }}"` (the key
    /// file's text, or only its second line).
    pub sign_key: Option<String>,
    /// The key's password, when it has one (`minisign -G` without `-W`); from a secret.
    pub sign_key_password: Option<String>,
}
