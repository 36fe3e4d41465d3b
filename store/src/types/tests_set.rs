//! Tests of set.
