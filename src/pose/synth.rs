//! Synthetic BOP-format RGB-D recordings rendered with [`crate::pose::render`].
