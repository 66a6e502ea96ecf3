// Command bench runs possum's peer benchmark.
package main

func main() {}
