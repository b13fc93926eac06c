// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title gpumarket escrow
/// @notice Every job is paid through this contract. A developer's EIP-712 order moves its
/// maximum payment from the developer's deposit into escrow; the provider's signed result
/// starts a challenge window; after it, anyone finalizes: the provider earns its amount less
/// the protocol fee (a share of which is burned), the developer gets the rest back. A challenge
/// inside the window goes to the arbiter, who either slashes the provider's locked stake and
/// refunds the developer, or pays the provider (with the challenger's bond).
/// @dev Gas matters: a job is one storage word, accounts are numbered so a job can name both
/// of its parties in it, each account's balances share one word, and the treasury and burn
/// balances share one. Each step reads such a word once and writes it once (packed by hand:
/// the compiler writes a struct field by field). Batches keep the terms and the last account's
/// balances in memory between jobs. Money leaves only through pull withdrawals, so one blocked
/// recipient never stops the others. Invariant: the token balance equals deposits + earnings +
/// stakes + unstaking + escrow + bonds + treasury + burn.
contract GpuMarket is AccessControl, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");
    bytes32 public constant ORDER_TYPEHASH = keccak256(
        "Order(bytes32 jobId,bytes32 specHash,uint64 maxPayment,uint64 deadline,uint64 nonce)"
    );
    bytes32 public constant RESULT_TYPEHASH =
        keccak256("Result(bytes32 jobId,bytes32 resultHash,uint64 amount)");
    uint16 public constant MAX_FEE_BPS = 1000;
    uint16 public constant BPS = 10_000;
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;

    enum State {
        None,
        Open,
        Committed,
        Disputed,
        Settled,
        Refunded,
        Cancelled
    }

    /// @dev Stored packed in one word (`_jobs`). `deadline`: until commit, the time after which
    /// the job may expire; after commit, the end of the challenge window.
    struct Job {
        uint32 developer;
        uint32 provider;
        uint64 maxPayment;
        uint64 amount;
        uint32 deadline;
        uint16 terms;
        State state;
    }

    /// @dev Snapshotted per job at open, so a later change never touches a running job.
    /// Stored packed in one word per index (`_terms`).
    struct Terms {
        uint16 feeBps;
        uint16 burnBps;
        uint16 slashShareBps;
        uint32 window;
        uint64 minStake;
        uint64 challengeBond;
    }

    struct Order {
        bytes32 jobId;
        bytes32 specHash;
        uint64 maxPayment;
        uint64 deadline;
        uint64 nonce;
    }

    /// @dev An EIP-2098 compact signature: `r`, and `s` with the parity of `v` in its top bit
    /// (64 bytes of calldata where `bytes` takes 160).
    struct Sig {
        bytes32 r;
        bytes32 vs;
    }

    struct Unstaking {
        uint64 amount;
        uint64 readyAt;
    }

    struct Dispute {
        uint32 challenger;
        uint64 bond;
    }

    // Bit offsets of the packed words. A job: developer and provider account ids,
    // maxPayment, amount, deadline, terms index, state.
    uint256 private constant J_PROVIDER = 32;
    uint256 private constant J_MAX = 64;
    uint256 private constant J_AMOUNT = 128;
    uint256 private constant J_DEADLINE = 192;
    uint256 private constant J_TERMS = 224;
    uint256 private constant J_STATE = 240;
    // An account's balances (one word each; 64 bits a field).
    uint256 private constant B_DEPOSIT = 0;
    uint256 private constant B_EARNINGS = 64;
    uint256 private constant B_STAKE = 128;
    uint256 private constant B_LOCKED = 192;
    // Terms: feeBps, burnBps, slashShareBps, window, minStake, challengeBond.
    uint256 private constant T_BURN = 16;
    uint256 private constant T_SLASH = 32;
    uint256 private constant T_WINDOW = 48;
    uint256 private constant T_MIN_STAKE = 80;
    uint256 private constant T_BOND = 144;
    uint256 private constant P_BURN = 128;
    uint256 private constant P_KEEP = 1 << 255;
    uint256 private constant U127 = (1 << 127) - 1;
    uint256 private constant C_PAUSED = 1;
    uint256 private constant C_TERMS = 8;
    uint256 private constant U16 = type(uint16).max;
    uint256 private constant U32 = type(uint32).max;
    uint256 private constant U64 = type(uint64).max;

    IERC20 public immutable token;
    address public treasury;
    uint64 public unstakeDelay;
    /// @dev treasury balance in the low 128 bits, burn balance in the next 127, and a bit that
    /// is always set: the word never returns to zero, so the first finalize after the treasury
    /// and the burn share are both paid out does not pay 20,000 gas to create it again
    uint256 private _protocol = P_KEEP;

    /// @dev Every open reads this one word: the pause flag (bit 0) and the index of the
    /// current terms (bits 8-23). OpenZeppelin's Pausable would be a word of its own.
    uint256 private _config;
    /// @dev A mapping, not an array: reading a job's terms needs no length check (a cold read).
    mapping(uint256 index => uint256) private _terms;
    mapping(bytes32 jobId => uint256) private _jobs;
    mapping(address account => uint32) public accountId;
    address[] public accounts;
    mapping(uint32 id => uint256) private _balances;
    mapping(uint32 id => Unstaking) public unstaking;
    mapping(bytes32 jobId => Dispute) public disputes;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Staked(address indexed provider, uint256 amount);
    event UnstakeRequested(address indexed provider, uint256 amount, uint256 readyAt);
    event StakeWithdrawn(address indexed provider, uint256 amount);
    event EarningsWithdrawn(address indexed account, uint256 amount);
    event JobOpened(
        bytes32 indexed jobId, address indexed developer, bytes32 specHash, uint256 maxPayment
    );
    event ResultCommitted(
        bytes32 indexed jobId,
        address indexed provider,
        bytes32 resultHash,
        uint256 amount,
        uint256 windowEnd
    );
    event Challenged(bytes32 indexed jobId, address indexed challenger, uint256 bond);
    event Resolved(bytes32 indexed jobId, bool providerAtFault, uint256 slashed);
    event Settled(
        bytes32 indexed jobId, uint256 providerPaid, uint256 fee, uint256 burned, uint256 refund
    );
    event Refunded(bytes32 indexed jobId, uint256 amount);
    event Cancelled(bytes32 indexed jobId, uint256 refund);
    event TermsChanged(uint16 indexed index, Terms terms);
    event TreasuryChanged(address treasury);
    event UnstakeDelayChanged(uint64 delay);
    event TreasuryWithdrawn(address indexed to, uint256 amount);
    event Burned(uint256 amount);
    event Paused(address account);
    event Unpaused(address account);

    error UnknownAccount(address account);
    error InsufficientBalance(uint256 available, uint256 needed);
    error WrongState(bytes32 jobId, State state);
    error OrderExpired(uint256 deadline, uint256 now_);
    error BadSignature(address signer);
    error AmountOverMax(uint256 amount, uint256 maxPayment);
    error StakeTooLow(uint256 free, uint256 needed);
    error WindowClosed(uint256 windowEnd, uint256 now_);
    error WindowOpen(uint256 windowEnd, uint256 now_);
    error NotDeveloperOrVerifier(address caller);
    error NotExpired(uint256 deadline, uint256 now_);
    error UnstakeNotReady(uint256 readyAt, uint256 now_);
    error BadTerms();
    error ZeroAmount();
    error EnforcedPause();
    error ExpectedPause();
    error UnknownTerms(uint256 index);

    constructor(IERC20 token_, address admin, address treasury_, Terms memory initial)
        EIP712("gpumarket", "1")
    {
        token = token_;
        treasury = treasury_;
        unstakeDelay = 7 days;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        accounts.push(address(0)); // id 0 means "no account"
        _setTerms(initial, true);
    }

    // ------------------------------------------------------------------ packed storage

    function _loadJob(bytes32 jobId) internal view returns (Job memory j) {
        uint256 w = _jobs[jobId];
        j.developer = uint32(w);
        j.provider = uint32(w >> J_PROVIDER);
        j.maxPayment = uint64(w >> J_MAX);
        j.amount = uint64(w >> J_AMOUNT);
        j.deadline = uint32(w >> J_DEADLINE);
        j.terms = uint16(w >> J_TERMS);
        j.state = State(uint8(w >> J_STATE));
    }

    function _setState(bytes32 jobId, uint256 w, State next) internal {
        _jobs[jobId] = (w & ~(uint256(0xff) << J_STATE)) | (uint256(uint8(next)) << J_STATE);
    }

    /// @dev Field `at` (a B_ offset) of a balance word.
    function _get(uint256 w, uint256 at) internal pure returns (uint64) {
        return uint64(w >> at);
    }

    /// @dev The balance word with field `at` replaced (callers compute the value with checked
    /// uint64 arithmetic, so an overflow reverts as it would on a struct field).
    function _put(uint256 w, uint256 at, uint64 value) internal pure returns (uint256) {
        return (w & ~(U64 << at)) | (uint256(value) << at);
    }

    function _credit(uint32 id, uint256 at, uint64 amount) internal {
        uint256 w = _balances[id];
        _balances[id] = _put(w, at, _get(w, at) + amount);
    }

    function _debit(uint32 id, uint256 at, uint64 amount) internal {
        uint256 w = _balances[id];
        uint64 has = _get(w, at);
        if (has < amount) revert InsufficientBalance(has, amount);
        _balances[id] = _put(w, at, has - amount);
    }

    function _creditProtocol(uint256 toTreasury, uint256 toBurn) internal {
        uint256 w = _protocol;
        uint128 t = uint128(w) + uint128(toTreasury);
        // 127 bits hold any burn share: every amount that reaches here is a uint64
        uint256 b = ((w >> P_BURN) & U127) + toBurn;
        _protocol = P_KEEP | (b << P_BURN) | uint256(t);
    }

    function _packTerms(Terms memory t) internal pure returns (uint256) {
        return uint256(t.feeBps) | (uint256(t.burnBps) << T_BURN)
            | (uint256(t.slashShareBps) << T_SLASH) | (uint256(t.window) << T_WINDOW)
            | (uint256(t.minStake) << T_MIN_STAKE) | (uint256(t.challengeBond) << T_BOND);
    }

    function _unpackTerms(uint256 w) internal pure returns (Terms memory t) {
        t.feeBps = uint16(w);
        t.burnBps = uint16(w >> T_BURN);
        t.slashShareBps = uint16(w >> T_SLASH);
        t.window = uint32(w >> T_WINDOW);
        t.minStake = uint64(w >> T_MIN_STAKE);
        t.challengeBond = uint64(w >> T_BOND);
    }

    /// @notice A job, as the struct's fields.
    function jobs(bytes32 jobId)
        external
        view
        returns (
            uint32 developer,
            uint32 provider,
            uint64 maxPayment,
            uint64 amount,
            uint32 deadline,
            uint16 termsIndex,
            State state
        )
    {
        Job memory j = _loadJob(jobId);
        return (j.developer, j.provider, j.maxPayment, j.amount, j.deadline, j.terms, j.state);
    }

    /// @notice An account's deposit, earnings, stake and the part of the stake locked by jobs.
    function balances(uint32 id)
        external
        view
        returns (uint64 deposit_, uint64 earnings, uint64 stake_, uint64 lockedStake)
    {
        uint256 w = _balances[id];
        return (_get(w, B_DEPOSIT), _get(w, B_EARNINGS), _get(w, B_STAKE), _get(w, B_LOCKED));
    }

    /// @notice The terms at `index` (a job's snapshot; the last one is current).
    function terms(uint256 index)
        external
        view
        returns (
            uint16 feeBps,
            uint16 burnBps,
            uint16 slashShareBps,
            uint32 window,
            uint64 minStake,
            uint64 challengeBond
        )
    {
        if (index > _currentTermsIndex()) revert UnknownTerms(index);
        Terms memory t = _unpackTerms(_terms[index]);
        return (t.feeBps, t.burnBps, t.slashShareBps, t.window, t.minStake, t.challengeBond);
    }

    /// @notice Fees owed to the treasury, not yet withdrawn.
    function treasuryBalance() public view returns (uint128) {
        return uint128(_protocol);
    }

    /// @notice The fees' burn share, not yet burned.
    function burnBalance() public view returns (uint128) {
        return uint128((_protocol >> P_BURN) & U127);
    }

    // ------------------------------------------------------------------ accounts

    function _account(address who) internal returns (uint32 id) {
        id = accountId[who];
        if (id == 0) {
            id = uint32(accounts.length);
            accounts.push(who);
            accountId[who] = id;
        }
    }

    function _known(address who) internal view returns (uint32 id) {
        id = accountId[who];
        if (id == 0) revert UnknownAccount(who);
    }

    /// @notice Add to your deposit, from which jobs are escrowed.
    function deposit(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint32 id = _account(msg.sender);
        token.safeTransferFrom(msg.sender, address(this), amount);
        _credit(id, B_DEPOSIT, amount);
        emit Deposited(msg.sender, amount);
    }

    /// @notice Take free deposit back; works while paused.
    function withdraw(uint64 amount) external nonReentrant {
        _debit(_known(msg.sender), B_DEPOSIT, amount);
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Stake as a provider; a committed job locks `minStake` of it until settled.
    function stake(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint32 id = _account(msg.sender);
        token.safeTransferFrom(msg.sender, address(this), amount);
        _credit(id, B_STAKE, amount);
        emit Staked(msg.sender, amount);
    }

    /// @notice Start taking unlocked stake out; it can be withdrawn after `unstakeDelay`.
    function requestUnstake(uint64 amount) external {
        uint32 id = _known(msg.sender);
        uint256 w = _balances[id];
        uint64 staked = _get(w, B_STAKE);
        uint64 free = staked - _get(w, B_LOCKED);
        if (free < amount) revert InsufficientBalance(free, amount);
        _balances[id] = _put(w, B_STAKE, staked - amount);
        Unstaking storage u = unstaking[id];
        u.amount += amount;
        u.readyAt = uint64(block.timestamp) + unstakeDelay;
        emit UnstakeRequested(msg.sender, amount, u.readyAt);
    }

    /// @notice Withdraw stake whose unstake delay has passed; works while paused.
    function withdrawStake() external nonReentrant {
        uint32 id = _known(msg.sender);
        Unstaking memory u = unstaking[id];
        if (block.timestamp < u.readyAt) revert UnstakeNotReady(u.readyAt, block.timestamp);
        if (u.amount == 0) revert ZeroAmount();
        delete unstaking[id];
        token.safeTransfer(msg.sender, u.amount);
        emit StakeWithdrawn(msg.sender, u.amount);
    }

    /// @notice Withdraw earnings (providers' pay, challengers' rewards); works while paused.
    function withdrawEarnings() external nonReentrant {
        uint32 id = _known(msg.sender);
        uint256 w = _balances[id];
        uint64 amount = _get(w, B_EARNINGS);
        if (amount == 0) revert ZeroAmount();
        _balances[id] = _put(w, B_EARNINGS, 0);
        token.safeTransfer(msg.sender, amount);
        emit EarningsWithdrawn(msg.sender, amount);
    }

    // ------------------------------------------------------------------ batches

    /// @dev What a step keeps in memory between the jobs of a batch (a single call is a batch
    /// of one): the last provider's and developer's balance words and the last terms, so an
    /// account that recurs is read and written once per batch, and the protocol's share,
    /// credited once at the end (`_flush`). An account is never held in both slots (a
    /// developer may also be the provider): taking it moves it across.
    struct Batch {
        uint32 providerId;
        uint32 developerId;
        uint32 termsKey; // index + 1; 0: none loaded
        uint256 provider;
        uint256 developer;
        uint256 terms;
        uint256 fees;
        uint256 burned;
    }

    function _useProvider(Batch memory b, uint32 id) internal {
        if (b.providerId == id) return;
        if (b.providerId != 0) _balances[b.providerId] = b.provider;
        if (b.developerId == id) {
            b.provider = b.developer;
            b.developerId = 0;
        } else {
            b.provider = _balances[id];
        }
        b.providerId = id;
    }

    function _useDeveloper(Batch memory b, uint32 id) internal {
        if (b.developerId == id) return;
        if (b.developerId != 0) _balances[b.developerId] = b.developer;
        if (b.providerId == id) {
            b.developer = b.provider;
            b.providerId = 0;
        } else {
            b.developer = _balances[id];
        }
        b.developerId = id;
    }

    function _termsOf(Batch memory b, uint16 index) internal view returns (uint256) {
        if (b.termsKey != uint32(index) + 1) {
            b.termsKey = uint32(index) + 1;
            b.terms = _terms[index];
        }
        return b.terms;
    }

    function _flush(Batch memory b) internal {
        if (b.providerId != 0) _balances[b.providerId] = b.provider;
        if (b.developerId != 0) _balances[b.developerId] = b.developer;
        if (b.fees > 0) _creditProtocol(b.fees - b.burned, b.burned);
    }

    // ------------------------------------------------------------------ job lifecycle

    /// @notice The EIP-712 digest a developer signs for `order`.
    function orderDigest(Order calldata order) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    ORDER_TYPEHASH,
                    order.jobId,
                    order.specHash,
                    order.maxPayment,
                    order.deadline,
                    order.nonce
                )
            )
        );
    }

    /// @notice The EIP-712 digest a provider signs for its result.
    function resultDigest(bytes32 jobId, bytes32 resultHash, uint64 amount)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(RESULT_TYPEHASH, jobId, resultHash, amount)));
    }

    /// @notice Escrow a developer's signed order. The coordinator relays it, but can never
    /// move more than the developer signed for, nor reuse the signature for another job,
    /// contract or chain (the job id and the EIP-712 domain are signed).
    function openJob(Order calldata order, Sig calldata signature)
        external
        onlyRole(COORDINATOR_ROLE)
    {
        Batch memory b;
        _open(order, signature, _openingTerms(), b);
        _flush(b);
    }

    /// @dev The terms index new jobs get; reverts while paused (one read for both).
    function _openingTerms() internal view returns (uint16) {
        uint256 c = _config;
        if (c & C_PAUSED != 0) revert EnforcedPause();
        return uint16(c >> C_TERMS);
    }

    /// @notice Open many jobs in one transaction (all or none: any bad order reverts it).
    function openMany(Order[] calldata orders, Sig[] calldata signatures)
        external
        onlyRole(COORDINATOR_ROLE)
    {
        uint16 current = _openingTerms();
        Batch memory b;
        for (uint256 i = 0; i < orders.length; ++i) {
            _open(orders[i], signatures[i], current, b);
        }
        _flush(b);
    }

    function _open(Order calldata order, Sig calldata signature, uint16 current, Batch memory b)
        internal
    {
        bytes32 jobId = order.jobId;
        uint256 existing = _jobs[jobId];
        if (existing != 0) revert WrongState(jobId, State(uint8(existing >> J_STATE)));
        if (block.timestamp > order.deadline) revert OrderExpired(order.deadline, block.timestamp);
        address developer = ECDSA.recover(orderDigest(order), signature.r, signature.vs);
        uint32 dev = accountId[developer];
        if (dev == 0) revert BadSignature(developer);
        uint64 maxPayment = order.maxPayment;
        _useDeveloper(b, dev);
        uint64 free = _get(b.developer, B_DEPOSIT);
        if (free < maxPayment) revert InsufficientBalance(free, maxPayment);
        b.developer = _put(b.developer, B_DEPOSIT, free - maxPayment);
        // a deadline past 2106 is kept as the largest the job's 32 bits hold, never truncated
        // (a truncated one would let anyone expire the job at once)
        uint256 deadline = order.deadline > U32 ? U32 : order.deadline;
        _jobs[jobId] = uint256(dev) | (uint256(maxPayment) << J_MAX)
            | (deadline << J_DEADLINE) | (uint256(current) << J_TERMS)
            | (uint256(uint8(State.Open)) << J_STATE);
        emit JobOpened(jobId, developer, order.specHash, maxPayment);
    }

    /// @notice Record the provider's signed result and start the challenge window; locks
    /// `minStake` of the provider's stake until the job settles.
    function commitResult(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        Sig calldata providerSignature
    ) external onlyRole(COORDINATOR_ROLE) {
        Batch memory b;
        _commit(jobId, resultHash, amount, providerSignature, b);
        _flush(b);
    }

    /// @notice Commit many results in one transaction (all or none).
    function commitMany(
        bytes32[] calldata jobIds,
        bytes32[] calldata resultHashes,
        uint64[] calldata amounts,
        Sig[] calldata providerSignatures
    ) external onlyRole(COORDINATOR_ROLE) {
        Batch memory b;
        for (uint256 i = 0; i < jobIds.length; ++i) {
            _commit(jobIds[i], resultHashes[i], amounts[i], providerSignatures[i], b);
        }
        _flush(b);
    }

    function _commit(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        Sig calldata providerSignature,
        Batch memory b
    ) internal {
        uint256 w = _jobs[jobId];
        State state = State(uint8(w >> J_STATE));
        if (state != State.Open) revert WrongState(jobId, state);
        uint64 maxPayment = uint64(w >> J_MAX);
        if (amount > maxPayment) revert AmountOverMax(amount, maxPayment);
        address provider = ECDSA.recover(
            resultDigest(jobId, resultHash, amount), providerSignature.r, providerSignature.vs
        );
        uint32 prov = accountId[provider];
        if (prov == 0) revert BadSignature(provider);
        uint256 t = _termsOf(b, uint16(w >> J_TERMS));
        uint64 minStake = uint64(t >> T_MIN_STAKE);
        _useProvider(b, prov);
        uint64 locked = _get(b.provider, B_LOCKED);
        uint64 free = _get(b.provider, B_STAKE) - locked;
        if (free < minStake) revert StakeTooLow(free, minStake);
        b.provider = _put(b.provider, B_LOCKED, locked + minStake);
        uint32 windowEnd = uint32(block.timestamp) + uint32(t >> T_WINDOW);
        // keeps the developer, maxPayment and terms; the deadline becomes the window's end
        _jobs[jobId] = (w & (U32 | (U64 << J_MAX) | (U16 << J_TERMS)))
            | (uint256(prov) << J_PROVIDER) | (uint256(amount) << J_AMOUNT)
            | (uint256(windowEnd) << J_DEADLINE) | (uint256(uint8(State.Committed)) << J_STATE);
        emit ResultCommitted(jobId, provider, resultHash, amount, windowEnd);
    }

    /// @notice Dispute a committed result, strictly before the window ends, with the bond.
    function challenge(bytes32 jobId) external nonReentrant {
        uint256 w = _jobs[jobId];
        Job memory j = _loadJob(jobId);
        if (j.state != State.Committed) revert WrongState(jobId, j.state);
        if (block.timestamp >= j.deadline) revert WindowClosed(j.deadline, block.timestamp);
        if (accounts[j.developer] != msg.sender && !hasRole(VERIFIER_ROLE, msg.sender)) {
            revert NotDeveloperOrVerifier(msg.sender);
        }
        uint64 bond = uint64(_terms[j.terms] >> T_BOND);
        if (bond > 0) token.safeTransferFrom(msg.sender, address(this), bond);
        disputes[jobId] = Dispute({challenger: _account(msg.sender), bond: bond});
        _setState(jobId, w, State.Disputed);
        emit Challenged(jobId, msg.sender, bond);
    }

    /// @notice The arbiter's ruling. Provider at fault: its locked stake is slashed (a share to
    /// the challenger, the rest to the treasury), the developer gets the whole escrow back and
    /// the challenger its bond. Otherwise the bond goes to the provider and the job settles.
    function resolve(bytes32 jobId, bool providerAtFault) external onlyRole(ARBITER_ROLE) {
        uint256 w = _jobs[jobId];
        Job memory j = _loadJob(jobId);
        if (j.state != State.Disputed) revert WrongState(jobId, j.state);
        Dispute memory d = disputes[jobId];
        delete disputes[jobId];
        Terms memory t = _unpackTerms(_terms[j.terms]);
        if (providerAtFault) {
            uint64 slashed = t.minStake;
            uint256 p = _balances[j.provider];
            p = _put(p, B_LOCKED, _get(p, B_LOCKED) - slashed);
            _balances[j.provider] = _put(p, B_STAKE, _get(p, B_STAKE) - slashed);
            uint64 reward = uint64(uint256(slashed) * t.slashShareBps / BPS);
            _credit(d.challenger, B_EARNINGS, reward + d.bond);
            _creditProtocol(slashed - reward, 0);
            _credit(j.developer, B_DEPOSIT, j.maxPayment);
            _setState(jobId, w, State.Refunded);
            emit Resolved(jobId, true, slashed);
            emit Refunded(jobId, j.maxPayment);
        } else {
            _credit(j.provider, B_EARNINGS, d.bond);
            emit Resolved(jobId, false, 0);
            Batch memory b;
            _settle(jobId, w, b);
            _flush(b);
        }
    }

    /// @notice Pay out a committed job once its window has passed (anyone may call).
    function finalize(bytes32 jobId) external {
        uint256 w = _jobs[jobId];
        State state = State(uint8(w >> J_STATE));
        if (state != State.Committed) revert WrongState(jobId, state);
        uint32 windowEnd = uint32(w >> J_DEADLINE);
        if (block.timestamp < windowEnd) revert WindowOpen(windowEnd, block.timestamp);
        Batch memory b;
        _settle(jobId, w, b);
        _flush(b);
    }

    /// @notice Finalize many jobs in one transaction; jobs not ready are skipped, not fatal.
    /// @return settled how many were paid out
    function finalizeMany(bytes32[] calldata jobIds) external returns (uint256 settled) {
        Batch memory b;
        for (uint256 i = 0; i < jobIds.length; ++i) {
            bytes32 jobId = jobIds[i];
            uint256 w = _jobs[jobId];
            if (
                uint8(w >> J_STATE) == uint8(State.Committed)
                    && block.timestamp >= uint32(w >> J_DEADLINE)
            ) {
                _settle(jobId, w, b);
                ++settled;
            }
        }
        _flush(b);
    }

    /// @dev Pays the provider, refunds the developer and adds the protocol's share, all through
    /// the batch (the caller flushes it), and marks the job settled.
    function _settle(bytes32 jobId, uint256 w, Batch memory b) internal {
        uint256 t = _termsOf(b, uint16(w >> J_TERMS));
        uint64 amount = uint64(w >> J_AMOUNT);
        uint64 fee = uint64(uint256(amount) * uint16(t) / BPS);
        uint64 burned = uint64(uint256(fee) * uint16(t >> T_BURN) / BPS);
        uint64 refund = uint64(w >> J_MAX) - amount;
        _useProvider(b, uint32(w >> J_PROVIDER));
        uint256 p = b.provider;
        p = _put(p, B_EARNINGS, _get(p, B_EARNINGS) + (amount - fee));
        b.provider = _put(p, B_LOCKED, _get(p, B_LOCKED) - uint64(t >> T_MIN_STAKE));
        if (refund > 0) {
            _useDeveloper(b, uint32(w));
            b.developer = _put(b.developer, B_DEPOSIT, _get(b.developer, B_DEPOSIT) + refund);
        }
        b.fees += fee;
        b.burned += burned;
        _setState(jobId, w, State.Settled);
        emit Settled(jobId, amount - fee, fee, burned, refund);
    }

    /// @notice The coordinator cancels a job before any result: the escrow goes back.
    function cancel(bytes32 jobId) external onlyRole(COORDINATOR_ROLE) {
        _refundOpen(jobId, _openJobWord(jobId));
    }

    /// @notice Anyone may expire a job that got no result by its order's deadline.
    function expire(bytes32 jobId) external {
        uint256 w = _openJobWord(jobId);
        uint32 deadline = uint32(w >> J_DEADLINE);
        if (block.timestamp <= deadline) revert NotExpired(deadline, block.timestamp);
        _refundOpen(jobId, w);
    }

    /// @dev The job's word, which must be Open: a job with a result (or none at all) says so
    /// by its state, before any deadline is looked at.
    function _openJobWord(bytes32 jobId) internal view returns (uint256 w) {
        w = _jobs[jobId];
        State state = State(uint8(w >> J_STATE));
        if (state != State.Open) revert WrongState(jobId, state);
    }

    function _refundOpen(bytes32 jobId, uint256 w) internal {
        uint64 refund = uint64(w >> J_MAX);
        _credit(uint32(w), B_DEPOSIT, refund);
        _setState(jobId, w, State.Cancelled);
        emit Cancelled(jobId, refund);
    }

    // ------------------------------------------------------------------ protocol

    /// @notice Change the terms for jobs opened from now on (fee capped at 10%).
    function setTerms(Terms calldata next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTerms(next, false);
    }

    /// @dev The first terms (from the constructor) get index 0, each later one the next.
    function _setTerms(Terms memory next, bool first) internal {
        if (next.feeBps > MAX_FEE_BPS || next.burnBps > BPS || next.slashShareBps > BPS) {
            revert BadTerms();
        }
        uint256 c = _config;
        uint16 index = first ? 0 : uint16(c >> C_TERMS) + 1;
        _terms[index] = _packTerms(next);
        _config = (c & ~(U16 << C_TERMS)) | (uint256(index) << C_TERMS);
        emit TermsChanged(index, next);
    }

    function _currentTermsIndex() internal view returns (uint16) {
        return uint16(_config >> C_TERMS);
    }

    /// @notice The terms new jobs get.
    function currentTerms() external view returns (Terms memory) {
        return _unpackTerms(_terms[_currentTermsIndex()]);
    }

    /// @notice Where `withdrawTreasury` sends the fees from now on.
    function setTreasury(address next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        treasury = next;
        emit TreasuryChanged(next);
    }

    /// @notice How long unstaked tokens wait before they can be withdrawn (requests already
    /// made keep their time).
    function setUnstakeDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        unstakeDelay = delay;
        emit UnstakeDelayChanged(delay);
    }

    /// @notice Send the accumulated fees to the treasury address (works while paused).
    function withdrawTreasury() external nonReentrant {
        uint128 amount = treasuryBalance();
        if (amount == 0) revert ZeroAmount();
        _protocol &= ~uint256(type(uint128).max);
        token.safeTransfer(treasury, amount);
        emit TreasuryWithdrawn(treasury, amount);
    }

    /// @notice Burn the accumulated burn share (sent to the dead address; anyone may call).
    function burn() external nonReentrant {
        uint128 amount = burnBalance();
        if (amount == 0) revert ZeroAmount();
        _protocol &= P_KEEP | type(uint128).max;
        token.safeTransfer(BURN_ADDRESS, amount);
        emit Burned(amount);
    }

    /// @notice Whether new jobs are refused (withdrawals always work).
    function paused() public view returns (bool) {
        return _config & C_PAUSED != 0;
    }

    /// @notice Stop new jobs; everything else, withdrawals included, goes on.
    function pause() external onlyRole(PAUSER_ROLE) {
        uint256 c = _config;
        if (c & C_PAUSED != 0) revert EnforcedPause();
        _config = c | C_PAUSED;
        emit Paused(msg.sender);
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        uint256 c = _config;
        if (c & C_PAUSED == 0) revert ExpectedPause();
        _config = c & ~C_PAUSED;
        emit Unpaused(msg.sender);
    }

    /// @notice How many accounts exist (account ids run from 1).
    function accountCount() external view returns (uint256) {
        return accounts.length - 1;
    }
}
