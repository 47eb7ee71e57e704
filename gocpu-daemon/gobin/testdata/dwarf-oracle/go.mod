module dwarforacle

go 1.19
