//! Examples and integration tests of the artifex-rs workspace.
