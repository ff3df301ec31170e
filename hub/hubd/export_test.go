package hubd

// ReplicaID is replicaID, for tests.
var ReplicaID = replicaID
