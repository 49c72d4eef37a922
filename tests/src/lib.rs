//! Test harness: throwaway network namespaces, a cluster started inside one, and kubectl runs.
