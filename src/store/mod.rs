//! Durable state in one redb file: users, bindings, the per-install secret.
