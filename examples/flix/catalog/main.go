// Command catalog is the flix catalog service: titles (movies and series)
// from a dataset generated at start from a fixed seed, so every instance
// serves the same titles without shared storage.
//
//	GET /titles?limit=20&offset=0   a page of titles, by id
//	GET /titles/{id}                one title; 404 JSON for an unknown id
package main

import "github.com/shoal-dev/shoal"

func main() {
	shoal.Main(shoal.Config{Name: "catalog"}, newHandler(generate(datasetSeed, datasetSize)))
}
