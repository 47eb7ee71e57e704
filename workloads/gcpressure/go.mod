module gocpu.dev/workloads/gcpressure

go 1.19
