//! Pods: desired (from the control plane) versus actual, one worker per pod.
