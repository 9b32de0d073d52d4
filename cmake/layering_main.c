/* The layering check's program (CMakeLists.txt): linked with every object of one room and only
 * the rooms below it, so that the build fails on a call into a room above. It does nothing. */
int main(void);
int main(void) { return 0; }
