//! Invalid playbooks: exit 2, nothing run, every problem pointed at with file:line:col.

use super::*;
