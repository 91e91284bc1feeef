//! Small helpers shared by the lessons (being written).
