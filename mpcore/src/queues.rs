//! Queues (being written).
