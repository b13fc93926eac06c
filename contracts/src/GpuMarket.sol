// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
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
/// @dev Gas matters: a job is one storage slot, accounts are numbered so a job can name both
/// of its parties in it, and each account's balances share one slot. Money leaves only through
/// pull withdrawals, so one blocked recipient never stops the others. Invariant: the token
/// balance equals deposits + earnings + stakes + unstaking + escrow + bonds + treasury + burn.
contract GpuMarket is AccessControl, Pausable, ReentrancyGuardTransient, EIP712 {
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

    /// @dev One slot. `deadline`: until commit, the time after which the job may expire;
    /// after commit, the end of the challenge window.
    struct Job {
        uint32 developer;
        uint32 provider;
        uint64 maxPayment;
        uint64 amount;
        uint32 deadline;
        uint16 terms;
        State state;
    }

    /// @dev One slot per account (developers, providers, challengers).
    struct Balance {
        uint64 deposit;
        uint64 earnings;
        uint64 stake;
        uint64 lockedStake;
    }

    /// @dev Snapshotted per job at open, so a later change never touches a running job.
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

    struct Unstaking {
        uint64 amount;
        uint64 readyAt;
    }

    struct Dispute {
        uint32 challenger;
        uint64 bond;
    }

    IERC20 public immutable token;
    address public treasury;
    uint64 public unstakeDelay;
    uint128 public treasuryBalance;
    uint128 public burnBalance;

    Terms[] public terms;
    mapping(bytes32 jobId => Job) public jobs;
    mapping(address account => uint32) public accountId;
    address[] public accounts;
    mapping(uint32 id => Balance) public balances;
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
    event TreasuryWithdrawn(address indexed to, uint256 amount);
    event Burned(uint256 amount);

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

    constructor(IERC20 token_, address admin, address treasury_, Terms memory initial)
        EIP712("gpumarket", "1")
    {
        token = token_;
        treasury = treasury_;
        unstakeDelay = 7 days;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        accounts.push(address(0)); // id 0 means "no account"
        _setTerms(initial);
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
        balances[id].deposit += amount;
        emit Deposited(msg.sender, amount);
    }

    /// @notice Take free deposit back; works while paused.
    function withdraw(uint64 amount) external nonReentrant {
        Balance storage b = balances[_known(msg.sender)];
        if (b.deposit < amount) revert InsufficientBalance(b.deposit, amount);
        b.deposit -= amount;
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Stake as a provider; a committed job locks `minStake` of it until settled.
    function stake(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint32 id = _account(msg.sender);
        token.safeTransferFrom(msg.sender, address(this), amount);
        balances[id].stake += amount;
        emit Staked(msg.sender, amount);
    }

    /// @notice Start taking unlocked stake out; it can be withdrawn after `unstakeDelay`.
    function requestUnstake(uint64 amount) external {
        uint32 id = _known(msg.sender);
        Balance storage b = balances[id];
        uint64 free = b.stake - b.lockedStake;
        if (free < amount) revert InsufficientBalance(free, amount);
        b.stake -= amount;
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
        Balance storage b = balances[_known(msg.sender)];
        uint64 amount = b.earnings;
        if (amount == 0) revert ZeroAmount();
        b.earnings = 0;
        token.safeTransfer(msg.sender, amount);
        emit EarningsWithdrawn(msg.sender, amount);
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
    function openJob(Order calldata order, bytes calldata signature)
        external
        onlyRole(COORDINATOR_ROLE)
        whenNotPaused
    {
        _open(order, signature, uint16(terms.length - 1));
    }

    /// @notice Open many jobs in one transaction (all or none: any bad order reverts it).
    function openMany(Order[] calldata orders, bytes[] calldata signatures)
        external
        onlyRole(COORDINATOR_ROLE)
        whenNotPaused
    {
        uint16 current = uint16(terms.length - 1);
        for (uint256 i = 0; i < orders.length; ++i) {
            _open(orders[i], signatures[i], current);
        }
    }

    function _open(Order calldata order, bytes calldata signature, uint16 current) internal {
        Job storage job = jobs[order.jobId];
        if (job.state != State.None) revert WrongState(order.jobId, job.state);
        if (block.timestamp > order.deadline) revert OrderExpired(order.deadline, block.timestamp);
        address developer = ECDSA.recover(orderDigest(order), signature);
        uint32 dev = accountId[developer];
        if (dev == 0) revert BadSignature(developer);
        Balance storage b = balances[dev];
        if (b.deposit < order.maxPayment) revert InsufficientBalance(b.deposit, order.maxPayment);
        b.deposit -= order.maxPayment;
        jobs[order.jobId] = Job({
            developer: dev,
            provider: 0,
            maxPayment: order.maxPayment,
            amount: 0,
            deadline: uint32(order.deadline),
            terms: current,
            state: State.Open
        });
        emit JobOpened(order.jobId, developer, order.specHash, order.maxPayment);
    }

    /// @notice Record the provider's signed result and start the challenge window; locks
    /// `minStake` of the provider's stake until the job settles.
    function commitResult(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        bytes calldata providerSignature
    ) external onlyRole(COORDINATOR_ROLE) {
        _commit(jobId, resultHash, amount, providerSignature);
    }

    /// @notice Commit many results in one transaction (all or none).
    function commitMany(
        bytes32[] calldata jobIds,
        bytes32[] calldata resultHashes,
        uint64[] calldata amounts,
        bytes[] calldata providerSignatures
    ) external onlyRole(COORDINATOR_ROLE) {
        for (uint256 i = 0; i < jobIds.length; ++i) {
            _commit(jobIds[i], resultHashes[i], amounts[i], providerSignatures[i]);
        }
    }

    function _commit(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        bytes calldata providerSignature
    ) internal {
        Job storage job = jobs[jobId];
        Job memory j = job;
        if (j.state != State.Open) revert WrongState(jobId, j.state);
        if (amount > j.maxPayment) revert AmountOverMax(amount, j.maxPayment);
        address provider = ECDSA.recover(resultDigest(jobId, resultHash, amount), providerSignature);
        uint32 prov = accountId[provider];
        if (prov == 0) revert BadSignature(provider);
        Terms memory t = terms[j.terms];
        Balance storage b = balances[prov];
        uint64 free = b.stake - b.lockedStake;
        if (free < t.minStake) revert StakeTooLow(free, t.minStake);
        b.lockedStake += t.minStake;
        uint32 windowEnd = uint32(block.timestamp) + t.window;
        job.provider = prov;
        job.amount = amount;
        job.deadline = windowEnd;
        job.state = State.Committed;
        emit ResultCommitted(jobId, provider, resultHash, amount, windowEnd);
    }

    /// @notice Dispute a committed result, strictly before the window ends, with the bond.
    function challenge(bytes32 jobId) external nonReentrant {
        Job storage job = jobs[jobId];
        if (job.state != State.Committed) revert WrongState(jobId, job.state);
        if (block.timestamp >= job.deadline) revert WindowClosed(job.deadline, block.timestamp);
        if (accounts[job.developer] != msg.sender && !hasRole(VERIFIER_ROLE, msg.sender)) {
            revert NotDeveloperOrVerifier(msg.sender);
        }
        uint64 bond = terms[job.terms].challengeBond;
        if (bond > 0) token.safeTransferFrom(msg.sender, address(this), bond);
        disputes[jobId] = Dispute({challenger: _account(msg.sender), bond: bond});
        job.state = State.Disputed;
        emit Challenged(jobId, msg.sender, bond);
    }

    /// @notice The arbiter's ruling. Provider at fault: its locked stake is slashed (a share to
    /// the challenger, the rest to the treasury), the developer gets the whole escrow back and
    /// the challenger its bond. Otherwise the bond goes to the provider and the job settles.
    function resolve(bytes32 jobId, bool providerAtFault) external onlyRole(ARBITER_ROLE) {
        Job storage job = jobs[jobId];
        Job memory j = job;
        if (j.state != State.Disputed) revert WrongState(jobId, j.state);
        Dispute memory d = disputes[jobId];
        delete disputes[jobId];
        Terms memory t = terms[j.terms];
        if (providerAtFault) {
            Balance storage p = balances[j.provider];
            uint64 slashed = t.minStake;
            p.lockedStake -= slashed;
            p.stake -= slashed;
            uint64 reward = uint64(uint256(slashed) * t.slashShareBps / BPS);
            Balance storage c = balances[d.challenger];
            c.earnings += reward + d.bond;
            treasuryBalance += slashed - reward;
            balances[j.developer].deposit += j.maxPayment;
            job.state = State.Refunded;
            emit Resolved(jobId, true, slashed);
            emit Refunded(jobId, j.maxPayment);
        } else {
            balances[j.provider].earnings += d.bond;
            emit Resolved(jobId, false, 0);
            _settle(jobId, job, j, t);
        }
    }

    /// @notice Pay out a committed job once its window has passed (anyone may call).
    function finalize(bytes32 jobId) external {
        Job storage job = jobs[jobId];
        Job memory j = job;
        if (j.state != State.Committed) revert WrongState(jobId, j.state);
        if (block.timestamp < j.deadline) revert WindowOpen(j.deadline, block.timestamp);
        _settle(jobId, job, j, terms[j.terms]);
    }

    /// @notice Finalize many jobs in one transaction; jobs not ready are skipped, not fatal.
    /// @return settled how many were paid out
    function finalizeMany(bytes32[] calldata jobIds) external returns (uint256 settled) {
        for (uint256 i = 0; i < jobIds.length; ++i) {
            Job storage job = jobs[jobIds[i]];
            Job memory j = job;
            if (j.state == State.Committed && block.timestamp >= j.deadline) {
                _settle(jobIds[i], job, j, terms[j.terms]);
                ++settled;
            }
        }
    }

    function _settle(bytes32 jobId, Job storage job, Job memory j, Terms memory t) internal {
        uint64 fee = uint64(uint256(j.amount) * t.feeBps / BPS);
        uint64 burned = uint64(uint256(fee) * t.burnBps / BPS);
        uint64 refund = j.maxPayment - j.amount;
        Balance storage p = balances[j.provider];
        p.earnings += j.amount - fee;
        p.lockedStake -= t.minStake;
        if (refund > 0) balances[j.developer].deposit += refund;
        if (fee > 0) {
            treasuryBalance += fee - burned;
            burnBalance += burned;
        }
        job.state = State.Settled;
        emit Settled(jobId, j.amount - fee, fee, burned, refund);
    }

    /// @notice The coordinator cancels a job before any result: the escrow goes back.
    function cancel(bytes32 jobId) external onlyRole(COORDINATOR_ROLE) {
        _refundOpen(jobId);
    }

    /// @notice Anyone may expire a job that got no result by its order's deadline.
    function expire(bytes32 jobId) external {
        Job storage job = jobs[jobId];
        if (block.timestamp <= job.deadline) revert NotExpired(job.deadline, block.timestamp);
        _refundOpen(jobId);
    }

    function _refundOpen(bytes32 jobId) internal {
        Job storage job = jobs[jobId];
        if (job.state != State.Open) revert WrongState(jobId, job.state);
        uint64 refund = job.maxPayment;
        balances[job.developer].deposit += refund;
        job.state = State.Cancelled;
        emit Cancelled(jobId, refund);
    }

    // ------------------------------------------------------------------ protocol

    /// @notice Change the terms for jobs opened from now on (fee capped at 10%).
    function setTerms(Terms calldata next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTerms(next);
    }

    function _setTerms(Terms memory next) internal {
        if (next.feeBps > MAX_FEE_BPS || next.burnBps > BPS || next.slashShareBps > BPS) {
            revert BadTerms();
        }
        terms.push(next);
        emit TermsChanged(uint16(terms.length - 1), next);
    }

    /// @notice The terms new jobs get.
    function currentTerms() external view returns (Terms memory) {
        return terms[terms.length - 1];
    }

    function setTreasury(address next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        treasury = next;
        emit TreasuryChanged(next);
    }

    function setUnstakeDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        unstakeDelay = delay;
    }

    /// @notice Send the accumulated fees to the treasury address (works while paused).
    function withdrawTreasury() external nonReentrant {
        uint128 amount = treasuryBalance;
        if (amount == 0) revert ZeroAmount();
        treasuryBalance = 0;
        token.safeTransfer(treasury, amount);
        emit TreasuryWithdrawn(treasury, amount);
    }

    /// @notice Burn the accumulated burn share (sent to the dead address; anyone may call).
    function burn() external nonReentrant {
        uint128 amount = burnBalance;
        if (amount == 0) revert ZeroAmount();
        burnBalance = 0;
        token.safeTransfer(BURN_ADDRESS, amount);
        emit Burned(amount);
    }

    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    /// @notice How many accounts exist (account ids run from 1).
    function accountCount() external view returns (uint256) {
        return accounts.length - 1;
    }
}
