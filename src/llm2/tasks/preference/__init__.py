"""What the preference tasks share: the contract, the catalog of known losses, the offline symbolic proposer, the
contract's checks, the figures and the export notes."""
