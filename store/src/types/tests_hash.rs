//! Tests of hash.
