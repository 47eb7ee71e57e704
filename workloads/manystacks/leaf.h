// The C side of manystacks.
#include <stdint.h>

uint64_t gocpu_many_leaf(uint64_t x);
uint64_t gocpu_many_fresh_spin(int us);
