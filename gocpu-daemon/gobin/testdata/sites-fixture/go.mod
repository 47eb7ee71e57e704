module sitesfixture

go 1.19
