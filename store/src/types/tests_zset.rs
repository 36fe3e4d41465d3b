//! Tests of zset.
