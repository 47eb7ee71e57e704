module gocpu.dev/workloads/nativespin

go 1.19
