"""RepresentativeDatasetGen: component, executor, Beam sampling transforms and the artifact's storage layout."""
